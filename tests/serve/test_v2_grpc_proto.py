"""The gRPC service definition: the vendored ``.proto`` compiles to the descriptor loopml serves, its
messages are the ones a standard v2 client sends, and they live beside that client's in one process."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2
from tritonclient.grpc import service_pb2

from loopml.serve.grpc import _descriptor, _generate
from loopml.serve.grpc.proto import SERVICE, messages
from loopml.serve.grpc.service import RPCS


def test_the_descriptor_is_compiled_from_the_vendored_proto() -> None:
    """Fails when grpc_predict_v2.proto changed without `python -m loopml.serve.grpc._generate`."""
    compiled = descriptor_pb2.FileDescriptorProto.FromString(_generate.compile_proto())
    vendored = descriptor_pb2.FileDescriptorProto.FromString(_descriptor.SERIALIZED)
    assert compiled == vendored
    assert _generate.render(_descriptor.SERIALIZED).count("\n") > 10


def test_the_proto_keeps_its_licence_and_the_protocols_six_rpcs() -> None:
    text = _generate.PROTO.read_text(encoding="utf-8")
    assert "Licensed under the Apache License, Version 2.0" in text and "The KServe Authors" in text
    vendored = descriptor_pb2.FileDescriptorProto.FromString(_descriptor.SERIALIZED)
    (service,) = vendored.service
    assert f"{vendored.package}.{service.name}" == SERVICE == "inference.GRPCInferenceService"
    assert [m.name for m in service.method] == list(RPCS)


@pytest.mark.parametrize("name", ["ModelInferRequest", "ModelInferResponse", "ModelMetadataResponse"])
def test_messages_are_wire_compatible_with_a_standard_client(name: str) -> None:
    """Every field of loopml's message has the same number and type in the client library's own
    (Triton's definition, a superset of the protocol's)."""
    ours = descriptor_pb2.DescriptorProto()
    messages()[name].DESCRIPTOR.CopyToProto(ours)
    theirs = descriptor_pb2.DescriptorProto()
    getattr(service_pb2, name).DESCRIPTOR.CopyToProto(theirs)

    def fields(message: descriptor_pb2.DescriptorProto) -> set[tuple[str, int, int, int]]:
        nested = {f for m in message.nested_type for f in fields(m)}
        return nested | {(f.name, f.number, f.type, f.label) for f in message.field}

    assert fields(ours) <= fields(theirs)


def test_a_request_of_the_client_library_reads_back_field_for_field() -> None:
    sent = service_pb2.ModelInferRequest(model_name="fraud", id="x", raw_input_contents=[b"\x01"])
    sent.inputs.add(name="tx_amount", datatype="FP64", shape=[1])
    sent.parameters["explain"].bool_param = True
    read = messages()["ModelInferRequest"].FromString(sent.SerializeToString())
    assert (read.model_name, read.id, read.inputs[0].name, list(read.inputs[0].shape)) == (
        "fraud",
        "x",
        "tx_amount",
        [1],
    )
    assert read.parameters["explain"].bool_param is True and read.raw_input_contents == [b"\x01"]
