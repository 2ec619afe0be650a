"""Firmware rollouts (``firmware``) and diagnostics/log uploads (``diagnostics``)."""
