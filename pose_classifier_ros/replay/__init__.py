"""The offline path, whatever the source: frames through the node's pipeline into sinks, and what a run
reports. runner (`run_frames`: any source's SourceFrames through `FrameProcessor.step`), bag_replay
(`replay_bag`: a bag's source + runner + output bag), cli (`pose-classifier replay`; the run as a function,
`run_replay`, which season/ calls per input), ground_truth, report (metrics.json, report.txt, figures),
schedule_report (scheduled mode's section)."""
