// Package jsonl owns the telemetry file source used by replay: it reads
// one or more files (plain or gzip, detected by magic bytes) of telemetry
// messages, one per line, or of CSV time series, decodes them with
// ingest/telemetry or ingest/csvts and emits batches of observations.
//
// input.telemetry.format csv reads every file as CSV, a JSON format every
// file as JSONL; auto (the default) reads a file as CSV when its first
// lines look like a CSV header (csvts.Sniff), as JSONL otherwise. CSV rows
// without a device column belong to one device per file, named by
// csvts.DeviceNames over the files read as CSV. ReadRowLabels re-reads CSV
// files for the scorer with the same naming and parsing.
//
// Replay is event-time processing, but this source sorts nothing: each
// file is expected to be in time order and its records are emitted in file
// order (a CSV row earlier than the row before it is rejected). Several
// files are merged by event time — at each step the file whose next record
// is earliest goes first, ties going to the file named first — so the same
// files in the same order always give the same batches.
//
// A bad line is counted by reason, logged with its file and line (the first
// few per reason), and skipped; everything else goes on. A CSV cell that is
// not a number is left out of its row and counted (Stats.BadCells).
package jsonl

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow/go/v15/arrow/memory"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/csvts"
	"github.com/vigil-ot/vigil/ingest/telemetry"
)

// Stdin is the file name that reads standard input.
const Stdin = "-"

// loggedPerReason is how many rejects of one reason are logged in full;
// later ones are only counted, so a file of bad lines cannot flood the log.
const loggedPerReason = 5

const readBufferSize = 64 << 10

// Options configures a Source.
type Options struct {
	// Telemetry is input.telemetry: format, limits, batch size.
	Telemetry ingest.TelemetryConfig
	// Registry interns device and group names; shared with the baseline.
	Registry *ingest.Registry
	// Grouper derives group keys, usually the inventory.
	Grouper ingest.Grouper
	// Logger receives reject warnings; nil means slog.Default.
	Logger *slog.Logger
	// Mem allocates Arrow buffers; nil means an ingest.RecyclingAllocator
	// of the source's own, so that a record's buffers, once released, hold
	// the next records'. A large fleet's state makes the Go heap large and
	// its collections rare, so every record would otherwise fault in
	// fresh pages (300k devices: a tenth of the CPU in memmove and memset).
	Mem memory.Allocator
	// NameCSVAmong, when set, names the devices of CSV files as
	// csvts.DeviceNames names them among these paths (a superset of the
	// ones opened): a file replayed alone then gets the device name it
	// has when replayed with the others, as vigil score --each-file needs.
	NameCSVAmong []string
}

// Stats describes what a Source has read so far.
type Stats struct {
	Files    int
	Lines    int64            // non-blank lines read, CSV headers not counted
	Records  int64            // observation rows emitted (a Telegraf batch line gives several)
	Rejected int64            // lines rejected, all reasons together
	Rejects  map[string]int64 // lines rejected by reason (see telemetry.Reasons, csvts.Reasons)
	// BadCells counts CSV metric cells holding text that is not a number;
	// each was left out of a row that was kept.
	BadCells int64
	// BytesRead and BytesTotal are on-disk (compressed) bytes, for progress;
	// BytesTotal is 0 when unknown (stdin).
	BytesRead, BytesTotal int64
}

// Source replays JSONL telemetry files. It implements ingest.Source; its
// batches carry no positions to commit, so their Ack does nothing. It is
// not safe for concurrent use, except Stats.
type Source struct {
	cursors   []*cursor
	builder   *ingest.ObservationBuilder
	batchRows int
	maxLine   int
	log       *slog.Logger

	lines, records, rejected, badCells, bytesRead atomic.Int64
	bytesTotal                                    int64

	mu      sync.Mutex
	rejects map[string]int64

	err    error
	broken []error // read failures of files that ended early
	closed bool
}

// Open opens paths for replay (Stdin for standard input) and reads up to
// the first record of each. opts.Telemetry must be valid.
func Open(paths []string, opts Options) (*Source, error) {
	if len(paths) == 0 {
		return nil, errors.New("cannot open telemetry files: no files given")
	}
	if opts.Registry == nil || opts.Grouper == nil {
		return nil, errors.New("BUG: jsonl.Open needs a Registry and a Grouper")
	}
	if err := opts.Telemetry.Validate(); err != nil {
		return nil, fmt.Errorf("cannot open telemetry files: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := newSource(opts.Telemetry, opts.Logger)
	if opts.Mem == nil {
		opts.Mem = ingest.NewRecyclingAllocator()
	}
	s.builder = ingest.NewObservationBuilder(opts.Mem, opts.Registry, opts.Grouper)
	if err := s.openFiles(paths, opts.Telemetry, opts.NameCSVAmong); err != nil {
		s.Close()
		return nil, err
	}
	for _, c := range s.cursors {
		if err := c.advance(s); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func newSource(cfg ingest.TelemetryConfig, log *slog.Logger) *Source {
	return &Source{
		batchRows: cfg.BatchRows,
		maxLine:   cfg.MaxMessageBytes,
		log:       log,
		rejects:   make(map[string]int64),
	}
}

// openFiles opens a cursor for each path and gives the CSV ones their
// parsers, once every file's format is known: devices are named over all
// CSV files together (or among the paths of among, when given).
func (s *Source) openFiles(paths []string, cfg ingest.TelemetryConfig, among []string) error {
	var csvPaths []string
	for _, p := range paths {
		c, err := s.openCursor(p, cfg)
		if err != nil {
			return err
		}
		s.cursors = append(s.cursors, c)
		if c.isCSV {
			csvPaths = append(csvPaths, p)
		}
	}
	devices := csvts.DeviceNames(csvPaths)
	if len(among) > 0 {
		named := csvts.DeviceNames(among)
		byPath := make(map[string]string, len(among))
		for i, p := range among {
			byPath[p] = named[i]
		}
		for i, p := range csvPaths {
			if n, ok := byPath[p]; ok {
				devices[i] = n
			}
		}
	}
	k := 0
	for _, c := range s.cursors {
		if !c.isCSV {
			continue
		}
		device := devices[k]
		k++
		if c.header == nil {
			continue // empty file: no header, no rows
		}
		var err error
		if c.csv, err = csvts.NewParser(cfg, device, c.header); err != nil {
			return fmt.Errorf("cannot read CSV file %s: %w", c.name, err)
		}
	}
	return nil
}

// ReadBatch returns the next batch of up to batch_rows rows, or io.EOF
// when every file is exhausted. A file that fails to read (I/O, a
// truncated or corrupt gzip) ends at the failure and the others go on;
// once every row read is returned, ReadBatch returns those failures
// instead of io.EOF.
func (s *Source) ReadBatch(ctx context.Context) (*ingest.Batch, error) {
	if s.err != nil {
		return nil, s.err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for s.builder.Len() < s.batchRows {
		c := s.earliest()
		if c == nil {
			break
		}
		r := &c.rows[c.next]
		r.Partition, r.Offset = -1, c.rowsLine
		s.builder.Append(r)
		s.records.Add(1)
		if err := c.advance(s); err != nil {
			// A file cut short (a truncated gzip, an I/O error) ends
			// there: what was read of it is judged, the other files go
			// on, and the replay reports it at the end.
			c.done, c.rows = true, nil
			s.broken = append(s.broken, err)
			s.log.Warn("telemetry file ends early; its rows up to here are replayed", "file", c.name, "err", err)
		}
	}
	if s.builder.Len() == 0 {
		if len(s.broken) > 0 {
			s.err = errors.Join(s.broken...)
			return nil, s.err
		}
		return nil, io.EOF
	}
	rec, sets := s.builder.NewRecord()
	b := ingest.NewBatch(rec, nil)
	b.Sets = sets
	return b, nil
}

// earliest returns the cursor whose next row has the smallest event time,
// the first such cursor on ties, or nil when all are exhausted.
func (s *Source) earliest() *cursor {
	var best *cursor
	for _, c := range s.cursors {
		if c.done {
			continue
		}
		if best == nil || c.rows[c.next].TimeNanos < best.rows[best.next].TimeNanos {
			best = c
		}
	}
	return best
}

// Stats returns the counts so far. It may be called from any goroutine,
// e.g. for progress while ReadBatch runs.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	rejects := maps.Clone(s.rejects)
	s.mu.Unlock()
	return Stats{
		Files:      len(s.cursors),
		Lines:      s.lines.Load(),
		Records:    s.records.Load(),
		Rejected:   s.rejected.Load(),
		Rejects:    rejects,
		BadCells:   s.badCells.Load(),
		BytesRead:  s.bytesRead.Load(),
		BytesTotal: s.bytesTotal,
	}
}

// Close closes every file. It is safe to call more than once.
func (s *Source) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var first error
	for _, c := range s.cursors {
		if err := c.close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (s *Source) reject(c *cursor, line int64, err error) {
	reason := telemetry.ReasonOf(err)
	if reason == "" {
		reason = "other"
	}
	s.rejected.Add(1)
	s.mu.Lock()
	s.rejects[reason]++
	n := s.rejects[reason]
	s.mu.Unlock()
	switch {
	case n <= loggedPerReason:
		s.log.Warn("skipping bad telemetry line", "file", c.name, "line", line, "reason", reason, "err", err)
	case n == loggedPerReason+1:
		s.log.Warn("more bad telemetry lines of this reason; counting them without logging", "reason", reason, "file", c.name, "line", line)
	}
}

// badCell counts a CSV cell that is not a number, logging the first few.
func (s *Source) badCell(c *cursor, line int64, col int) {
	n := s.badCells.Add(1)
	switch {
	case n <= loggedPerReason:
		s.log.Warn("CSV cell is not a number; leaving it out of the row", "file", c.name, "line", line,
			"column", c.csv.Columns()[col], "value", string(c.csv.Field(col)))
	case n == loggedPerReason+1:
		s.log.Warn("more CSV cells that are not numbers; counting them without logging", "file", c.name, "line", line)
	}
}

// cursor reads one file.
type cursor struct {
	name   string
	closer io.Closer
	gz     *gzip.Reader
	br     *bufio.Reader
	dec    *telemetry.Decoder // JSONL files

	// CSV files: the header line, and its parser once openFiles named the
	// file's device. A CSV file without a header has neither.
	isCSV  bool
	header []byte
	csv    *csvts.Parser

	line    int64 // physical line number of the last line read
	lineBuf []byte

	rows     []ingest.Row // rows of the current line
	rowsLine int64
	next     int
	done     bool
}

// countingReader counts on-disk bytes for progress.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (s *Source) openCursor(path string, cfg ingest.TelemetryConfig) (*cursor, error) {
	c := &cursor{name: path}
	var r io.Reader
	if path == Stdin {
		c.name = "stdin"
		r = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("cannot open telemetry file: %w", err)
		}
		c.closer = f
		if st, err := f.Stat(); err == nil {
			s.bytesTotal += st.Size()
		}
		r = f
	}
	raw := bufio.NewReaderSize(countingReader{r: r, n: &s.bytesRead}, readBufferSize)
	c.br = raw
	if magic, _ := raw.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(raw)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("cannot read gzip file %s: %w", c.name, err)
		}
		c.gz = gz
		c.br = bufio.NewReaderSize(gz, readBufferSize)
	}
	switch cfg.Format {
	case ingest.FormatCSV:
		c.isCSV = true
	case ingest.FormatAuto:
		sep, _ := ingest.CSVSeparator(cfg.CSV.Separator)
		c.isCSV = csvts.Sniff(head(c.br), sep)
	}
	if !c.isCSV {
		dec, err := telemetry.NewDecoder(cfg)
		if err != nil {
			c.close()
			return nil, err
		}
		c.dec = dec
		return c, nil
	}
	if err := c.readHeader(s.maxLine); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// head returns the start of the file as buffered in br: its first two
// non-blank lines, or as much as the buffer holds, or the whole file when
// shorter. It reads no more than it must, as standard input may be a
// stream that pauses.
func head(br *bufio.Reader) []byte {
	n := 1
	for {
		if _, err := br.Peek(n); err != nil {
			b, _ := br.Peek(br.Buffered())
			return b
		}
		b, _ := br.Peek(br.Buffered())
		if completeLines(b) >= 2 || len(b) == br.Size() {
			return b
		}
		n = len(b) + 1
	}
}

// completeLines counts the non-blank lines of b that end with a newline.
func completeLines(b []byte) int {
	n := 0
	for {
		line, rest, found := bytes.Cut(b, []byte("\n"))
		if !found {
			return n
		}
		if len(bytes.TrimSpace(line)) > 0 {
			n++
		}
		b = rest
	}
}

// readHeader reads the first non-blank line of a CSV file into c.header,
// which stays nil for a file without one.
func (c *cursor) readHeader(max int) error {
	for {
		line, oversized, err := c.readLine(max)
		if err == io.EOF {
			c.done = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("cannot read %s: %w", c.name, err)
		}
		if oversized {
			return fmt.Errorf("cannot read CSV file %s: its header line %d is longer than max_message_bytes %d; raise it", c.name, c.line, max)
		}
		if len(bytes.TrimSpace(line)) > 0 {
			c.header = bytes.Clone(line)
			return nil
		}
	}
}

func (c *cursor) close() error {
	if c.gz != nil {
		c.gz.Close()
	}
	if c.closer != nil {
		return c.closer.Close()
	}
	return nil
}

// advance moves to the next row: the next one of the current line, else
// the first row of the next line that decodes. Bad lines are counted and
// skipped; only read errors are returned.
func (c *cursor) advance(s *Source) error {
	c.next++
	if c.next < len(c.rows) {
		return nil
	}
	if c.isCSV && c.csv == nil {
		c.done, c.rows = true, nil // an empty CSV file
		return nil
	}
	for {
		line, oversized, err := c.readLine(s.maxLine)
		if err == io.EOF {
			c.done, c.rows = true, nil
			return nil
		}
		if err != nil {
			return fmt.Errorf("cannot read %s after line %d: %w", c.name, c.line, err)
		}
		if !oversized && len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		s.lines.Add(1)
		if oversized {
			s.reject(c, c.line, &telemetry.DecodeError{Reason: telemetry.ReasonOversized,
				Detail: fmt.Sprintf("line is longer than max_message_bytes %d", s.maxLine)})
			continue
		}
		var rows []ingest.Row
		if c.csv != nil {
			rows, err = c.csv.Parse(line)
		} else {
			rows, err = c.dec.Decode(nil, line, 0)
		}
		if err != nil {
			s.reject(c, c.line, err)
			continue
		}
		if c.csv != nil {
			for _, col := range c.csv.BadCells() {
				s.badCell(c, c.line, col)
			}
		}
		c.rows, c.rowsLine, c.next = rows, c.line, 0
		return nil
	}
}

// readLine returns the next line without its line ending. A line longer
// than max is consumed without being kept (oversized is true), so memory
// stays bounded by max. The returned slice is valid until the next call.
func (c *cursor) readLine(max int) (line []byte, oversized bool, err error) {
	c.lineBuf = c.lineBuf[:0]
	first := true
	for {
		frag, err := c.br.ReadSlice('\n')
		if len(frag) > 0 || err == nil {
			if first && err == nil {
				// Common case: the whole line is in the read buffer.
				c.line++
				line = trimEOL(frag)
				return line, len(line) > max, nil
			}
			first = false
			if !oversized {
				if len(c.lineBuf)+len(frag) > max+2 { // +2 for a CRLF ending
					oversized, c.lineBuf = true, c.lineBuf[:0]
				} else {
					c.lineBuf = append(c.lineBuf, frag...)
				}
			}
		}
		switch {
		case err == nil:
			c.line++
			line = trimEOL(c.lineBuf)
			return line, oversized || len(line) > max, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			if first {
				return nil, false, io.EOF
			}
			// A last line without a newline still counts.
			c.line++
			line = trimEOL(c.lineBuf)
			return line, oversized || len(line) > max, nil
		default:
			return nil, false, err
		}
	}
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}
