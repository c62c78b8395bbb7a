"""One run: the config composed and checked once (`config`), read back from a run folder
(`saved_config`), the components built from it (`components`), the task loop (`task_loop`) and
THE loop on Lightning Fabric (`loop`, its settings in `loop_settings`), with its loggers,
callbacks, progress bar and DDP workers."""
