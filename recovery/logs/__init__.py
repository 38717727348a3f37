"""Reading the pipeline's logs: records (one per entry) and the incremental reader."""
