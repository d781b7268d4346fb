package kafka

import (
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/telemetry"
)

// telemetryDecoder adapts the telemetry decoders to Kafka records: the key
// may name the device, the record timestamp stands in for a missing event
// time, each row keeps its source position, and drill records are
// verified (see DrillCheck).
type telemetryDecoder struct {
	d     *telemetry.Decoder
	drill DrillCheck
}

// NewTelemetryDecoder returns a Decoder for telemetry topics that verifies
// drill records with drill.
func NewTelemetryDecoder(cfg ingest.TelemetryConfig, drill DrillCheck) (Decoder, error) {
	d, err := telemetry.NewDecoder(cfg)
	if err != nil {
		return nil, err
	}
	return &telemetryDecoder{d: d, drill: drill}, nil
}

func (t *telemetryDecoder) Decode(rec *Record, out *BatchBuilder) error {
	var ts int64
	if !rec.Time.IsZero() {
		ts = rec.Time.UnixNano()
	}
	rows, err := t.d.Decode(rec.Key, rec.Value, ts)
	if err != nil {
		return &RejectError{Why: telemetry.ReasonOf(err), Err: err}
	}
	tag, tagged := drillHeader(rec)
	if err := t.drill.check(tag, tagged, rec.Value, rows); err != nil {
		return err
	}
	for i := range rows {
		rows[i].Partition = rec.Partition
		rows[i].Offset = rec.Offset
		out.Append(&rows[i])
	}
	return nil
}
