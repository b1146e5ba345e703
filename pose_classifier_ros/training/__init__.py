"""Training and evaluating viewpoint heads on pose-labelled images (folder-per-class or CSV)."""
