"""The seed's asreview flow on workstack: makita's jobs.sh, split in parts, run by workers."""
