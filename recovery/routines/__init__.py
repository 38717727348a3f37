"""Recovery routines, one per file; `recovery.playbook` lists them."""
