"""The post ledger a pipeline imports: post, schedule_post, PostStatus and its transitions."""
