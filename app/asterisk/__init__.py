"""Asterisk queue_log ingestion: a pure line parser, the ingest route's helpers, and the file follower."""
