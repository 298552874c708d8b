"""Simulated credit-card fraud example: a seeded transaction generator with a regime change."""

from __future__ import annotations

from loopml.examples.fraud.simulator import SimulationConfig, simulate

__all__ = ["SimulationConfig", "simulate"]
