"""The classic failures reproduced, explained and measured, and per-layer error."""
