"""A field season at scale, ROS-free: `pose-classifier batch MANIFEST --out DIR` runs every input of a
manifest through the same offline path as `replay` (replay.replay_run.run_replay), on a local process pool
or a SLURM job array (submitit), resumable (done / failed markers with input and configuration hashes),
and merges the results into one season report (DIR/season/).

manifest (rows), markers (hashes, markers, atomic commit), runner (one input in a worker, the model loaded
once per worker), engines (local pool, SLURM), season_report (the merge), batch_cli (the command).
"""
