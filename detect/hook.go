package detect

import "github.com/vigil-ot/vigil/ingest"

// BatchDetector is a detector that judges a whole batch at once rather
// than row by row, such as the network detectors (novelty, scans, floods,
// malformed OT frames), which read Batch.Comms and Batch.Events. The Engine
// calls DetectBatch once per batch, after the row detectors and before the
// batch's output goes to the sink; Deps.Extra lists them.
//
// Contract: DetectBatch holds no I/O, does not keep b or anything of it
// past the call (Arrow buffers are released after Process), and appends one
// Alert per finding to out.Alerts with at least EventTime, Device, Group,
// Detector and Behavior set, and Observed/Expected/Score/Message/Technique
// and network context where known. It must not touch alerts already in
// out. The Engine owns what follows: the ID (when empty), the alarm start
// (EventTime when zero), criticality and severity (when Severity is 0),
// suppression, maintenance windows, the per-group rate limit, folding of
// repeats of one (detector, device, behavior) within
// detect.alarm.repeat_window, and the quarantine policy. It is called from
// the Engine's goroutine only.
type BatchDetector interface {
	DetectBatch(b *ingest.Batch, out *Output)
}
