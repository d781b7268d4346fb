package ingest

import "context"

// Source produces batches. ReadBatch blocks until a batch is ready, ctx
// ends (ctx.Err()) or the input is exhausted (io.EOF). The caller owns the
// returned batch and must Ack it exactly once. A Source reports a bad
// record by counting it and moving on; an error from ReadBatch means the
// source itself cannot go on.
type Source interface {
	ReadBatch(ctx context.Context) (*Batch, error)
	Close() error
}

// Grouper derives a device's group key (e.g. "plant-a/s7-1500") from its
// inventory attributes, complemented by attrs reported with telemetry,
// according to the configured group_by attributes.
type Grouper interface {
	Group(device string, attrs []Attr) string
}

// Criticality of an asset, from the inventory.
type Criticality uint8

// Criticality levels, lowest first.
const (
	CriticalityUnknown Criticality = iota
	CriticalityLow
	CriticalityMedium
	CriticalityHigh
	CriticalitySafety // safety-critical: never quarantined automatically
)

// String returns the inventory spelling of c.
func (c Criticality) String() string {
	switch c {
	case CriticalityLow:
		return "low"
	case CriticalityMedium:
		return "medium"
	case CriticalityHigh:
		return "high"
	case CriticalitySafety:
		return "safety-critical"
	}
	return "unknown"
}

// Asset is what the inventory knows of one device.
type Asset struct {
	Device      string
	IP          string
	MAC         string
	Attrs       map[string]string // site, hw, fw, owner, …
	Criticality Criticality
	Patchable   bool
}

// AssetLookup answers what the inventory knows of a device; ok is false for
// devices not in the inventory. Implementations are safe for concurrent use
// and may change their answers when the inventory is reloaded.
type AssetLookup interface {
	Asset(device string) (a Asset, ok bool)
}
