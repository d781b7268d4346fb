package jsonl

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/csvts"
)

// LabeledRow is one row of a CSV file as replay reads it, with the values
// of the label columns a scorer asked for.
type LabeledRow struct {
	Device string
	Time   time.Time // UTC
	// Labels holds one value per requested column: the number in the
	// cell (true and false are 1 and 0), NaN when the cell is empty or a
	// missing-value marker.
	Labels []float64
}

// ReadRowLabels re-reads CSV files for a scorer: for every row the replay
// source emits — the same rows, skipped by the same rules — it returns its
// device, time and the values of columns, with devices named and times
// parsed exactly as Open does for the same paths and cfg. Rows come in
// file order, the files in the order given (not merged by time).
//
// Every path must be read as CSV under cfg (cfg.Format csv, or auto and a
// CSV header). The error names a file that is not, a file missing some of
// columns (and which), or a label cell that is neither a number nor
// empty; I/O errors end the read too.
func ReadRowLabels(paths []string, cfg ingest.TelemetryConfig, columns []string) ([]LabeledRow, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("cannot read row labels: no files given")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot read row labels: %w", err)
	}
	s := newSource(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer s.Close()
	if err := s.openFiles(paths, cfg, nil); err != nil {
		return nil, fmt.Errorf("cannot read row labels: %w", err)
	}
	for _, c := range s.cursors {
		if !c.isCSV {
			return nil, fmt.Errorf("cannot read row labels of %s: it is not read as CSV (input.telemetry.format %s); its first line is no CSV header", c.name, cfg.Format)
		}
	}
	var (
		rows    []LabeledRow
		values  []float64 // every row's labels, cut into rows at the end
		devices = map[string]string{}
	)
	for _, c := range s.cursors {
		if c.csv == nil {
			continue // empty file
		}
		idx, err := labelColumns(c, columns)
		if err != nil {
			return nil, err
		}
		for {
			if err := c.advance(s); err != nil {
				return nil, err
			}
			if c.done {
				break
			}
			r := &c.rows[c.next]
			for k, col := range idx {
				v, st := csvts.CellValue(c.csv.Field(col))
				switch st {
				case csvts.CellMissing:
					v = math.NaN()
				case csvts.CellBad:
					return nil, fmt.Errorf("cannot read label %q of %s line %d: %q is not a number", columns[k], c.name, c.rowsLine, c.csv.Field(col))
				}
				values = append(values, v)
			}
			dev, ok := devices[r.Device]
			if !ok {
				dev = strings.Clone(r.Device)
				devices[dev] = dev
			}
			rows = append(rows, LabeledRow{Device: dev, Time: time.Unix(0, r.TimeNanos).UTC()})
		}
	}
	k := len(columns)
	for i := range rows {
		rows[i].Labels = values[i*k : (i+1)*k : (i+1)*k]
	}
	return rows, nil
}

// labelColumns returns the index of each of columns in c's header, or an
// error naming the ones it lacks.
func labelColumns(c *cursor, columns []string) ([]int, error) {
	idx := make([]int, len(columns))
	var missing []string
	for k, name := range columns {
		i, ok := c.csv.Lookup(name)
		if !ok {
			missing = append(missing, name)
		}
		idx[k] = i
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("cannot read row labels of %s: no column %s in its header [%s]", c.name, strings.Join(missing, ", "), strings.Join(c.csv.Columns(), ", "))
	}
	return idx, nil
}
