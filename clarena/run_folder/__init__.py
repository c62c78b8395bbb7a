"""The run folder: its lock and guarantees (`folder`), where it may be (`layout`), the
checkpoints (`checkpoint`), the log file (`logfile`), and the checks that make a folder from
someone else inert (`received`)."""
