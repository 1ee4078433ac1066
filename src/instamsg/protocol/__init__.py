"""The InstaMsg device protocol (spec §3-§13), built on the broker's hooks, never inside its core.

`plugin.DeviceProtocol` is the composition point: each feature module (identity and provisioning,
routing rules, telemetry ingest, config sync, files, commands) installs its hooks and topic handlers
through it.
"""
