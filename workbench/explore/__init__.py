"""Exploring on top of ``core``: sweeps, plots, widgets, the Netron viewer, graph tables, input codes."""
