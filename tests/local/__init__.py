"""Tests of the embedded local cluster (oscar_plugins.local)."""
