"""History imports: files of past events (`queuepulse import`, `queuepulse import-queue-log`) into the
events table in bulk, through the same validation, time rules and queue admission as live ingest."""
