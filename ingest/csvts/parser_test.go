package csvts

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/telemetry"
)

func config(mutate func(*ingest.CSVConfig)) ingest.TelemetryConfig {
	cfg := ingest.DefaultTelemetryConfig()
	if mutate != nil {
		mutate(&cfg.CSV)
	}
	return cfg
}

func newParser(t testing.TB, header string, mutate func(*ingest.CSVConfig)) *Parser {
	t.Helper()
	cfg := config(mutate)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := NewParser(cfg, "dev", []byte(header))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// show renders a parsed row, or the reason it was rejected.
func show(p *Parser, line string) string {
	rows, err := p.Parse([]byte(line))
	if err != nil {
		return "rejected " + telemetry.ReasonOf(err)
	}
	r := rows[0]
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Device, time.Unix(0, r.TimeNanos).UTC().Format(time.RFC3339Nano))
	for _, m := range r.Metrics {
		fmt.Fprintf(&b, " %s=%g", m.Name, m.Value)
	}
	return b.String()
}

func TestSemicolonLocalTimeLabelsExcluded(t *testing.T) {
	p := newParser(t, "datetime;Accelerometer1RMS;Volume Flow RateRMS;anomaly;changepoint", func(c *ingest.CSVConfig) {
		c.TimeZone = "Europe/Moscow" // UTC+3 all year
	})
	if got := fmt.Sprint(p.metricNames()); got != "[Accelerometer1RMS Volume_Flow_RateRMS]" {
		t.Fatalf("metrics %s: label columns must not be metrics", got)
	}
	if got := show(p, "2020-03-09 10:14:33;0.0265878;32.0;0.0;0.0"); got != "dev 2020-03-09T07:14:33Z Accelerometer1RMS=0.0265878 Volume_Flow_RateRMS=32" {
		t.Fatal(got)
	}
	// The same minute comes from the minute cache, the next from the zone.
	if got := show(p, "2020-03-09 10:14:59.25;1;2;1;1"); got != "dev 2020-03-09T07:14:59.25Z Accelerometer1RMS=1 Volume_Flow_RateRMS=2" {
		t.Fatal(got)
	}
	if got := show(p, "2020-03-09 10:15:00;1;;1;1"); got != "dev 2020-03-09T07:15:00Z Accelerometer1RMS=1" {
		t.Fatal(got)
	}
}

func TestCommaEpochMillisDeviceColumn(t *testing.T) {
	p := newParser(t, `ts,host,"bytes, out",up`, func(c *ingest.CSVConfig) {
		c.TimeLayout = ingest.CSVTimeEpochMS
		c.DeviceColumn = "HOST"
	})
	for line, want := range map[string]string{
		`1795687200123,plc-1,12,true`:     "plc-1 2026-11-26T10:00:00.123Z bytes_out=12 up=1",
		`1795687200124," plc-2 ",1e3,0`:   "plc-2 2026-11-26T10:00:00.124Z bytes_out=1000 up=0",
		`1795687200125,plc-1,"3",FALSE`:   "plc-1 2026-11-26T10:00:00.125Z bytes_out=3 up=0",
		`1795687200126,,1,1`:              "rejected missing_device",
		`1795687200000.5,plc-1,1,1`:       "plc-1 2026-11-26T10:00:00.0005Z bytes_out=1 up=1",
		`2026-11-26 10:00:00,plc-1,1,1`:   "rejected bad_timestamp",
		`1795687200127,plc-1,n/a,NONE`:    "rejected no_metrics",
		`1795687200128,plc-1,1,1,1`:       "rejected column_count",
		`1795687200129,plc-1,"1"1,1`:      "rejected csv_syntax",
		`1795687200130,"plc-1,1,1`:        "rejected csv_syntax",
		`1795687200131,plc-"1",1,1`:       "rejected csv_syntax",
		`1795687200132,"pl""c",1,1`:       `pl"c 2026-11-26T10:00:00.132Z bytes_out=1 up=1`,
		`1795687200133,plc-1,-1.5e-3,Inf`: "plc-1 2026-11-26T10:00:00.133Z bytes_out=-0.0015",
	} {
		p.haveLast = false // lines come in map order
		if got := show(p, line); got != want {
			t.Errorf("%s:\n got  %s\n want %s", line, got, want)
		}
	}
}

func TestBadCellsKeepTheRow(t *testing.T) {
	p := newParser(t, "time,a,b,c", nil)
	if got := show(p, "2026-11-21 10:00:00,ERR,2,+Inf"); got != "dev 2026-11-21T10:00:00Z b=2" {
		t.Fatal(got)
	}
	if got := fmt.Sprint(p.BadCells()); got != "[1 3]" {
		t.Fatalf("bad cells %s, want columns a and c", got)
	}
	if string(p.Field(1)) != "ERR" {
		t.Fatalf("field 1 %q", p.Field(1))
	}
	show(p, "2026-11-21 10:00:01,1,2,3")
	if len(p.BadCells()) != 0 {
		t.Fatalf("bad cells %v carried over", p.BadCells())
	}
}

func TestOutOfOrderRowsAreRejected(t *testing.T) {
	p := newParser(t, "time,a", nil)
	for _, c := range []struct{ line, want string }{
		{"2026-11-21 10:00:05,1", "dev 2026-11-21T10:00:05Z a=1"},
		{"2026-11-21 10:00:04,2", "rejected out_of_order"},
		{"2026-11-21 10:00:05,3", "dev 2026-11-21T10:00:05Z a=3"}, // equal times are in order
		{"2026-11-21 10:00:04,4", "rejected out_of_order"},        // compared with the last accepted
		{"2026-11-21 10:00:06,5", "dev 2026-11-21T10:00:06Z a=5"},
	} {
		if got := show(p, c.line); got != c.want {
			t.Errorf("%s: got %s, want %s", c.line, got, c.want)
		}
	}
}

func TestTimeColumn(t *testing.T) {
	for _, c := range []struct{ header, setting, device, want string }{
		{"a,Timestamp,b", "", "", "Timestamp"},
		{"value,ts", "", "", "ts"},
		{"when,a", "", "", "when"}, // no known name: the first column
		{"date,time,a", "", "", "date"},
		{"a,b,stamp", "STAMP", "", "stamp"},
		{"host,when,a", "", "host", "when"}, // the first column that is not the device's
	} {
		p := newParser(t, c.header, func(cfg *ingest.CSVConfig) { cfg.TimeColumn, cfg.DeviceColumn = c.setting, c.device })
		if got := p.Columns()[p.timeCol]; got != c.want {
			t.Errorf("%s: time column %q, want %q", c.header, got, c.want)
		}
	}
}

func TestHeaderErrors(t *testing.T) {
	for _, c := range []struct {
		header string
		mutate func(*ingest.CSVConfig)
		want   string
	}{
		{"when,a", func(c *ingest.CSVConfig) { c.TimeColumn = "stamp" },
			`no time column "stamp" in the header [when, a]; set input.telemetry.csv.time_column to one of them`},
		{"time,a", func(c *ingest.CSVConfig) { c.DeviceColumn = "host" }, `no column "host" in the header [time, a]`},
		{"time,anomaly", nil, "no metric columns in the header [time, anomaly]"},
		{"time;a;b", func(c *ingest.CSVConfig) { c.Separator = "," }, "no metric columns in the header [time;a;b]"},
		{"time,a b,a_b", nil, `columns "a b" and "a_b" both give metric "a_b"`},
		{`time,"a,b`, nil, "cannot split the header line"},
	} {
		cfg := config(c.mutate)
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		_, err := NewParser(cfg, "dev", []byte(c.header))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got  %v\n want %s", c.header, err, c.want)
		}
	}
	cfg := config(nil)
	cfg.MaxMetricNames = 2
	if _, err := NewParser(cfg, "dev", []byte("t,a,b,c")); err == nil || !strings.Contains(err.Error(), "3 metric columns, over max_metric_names 2") {
		t.Errorf("max_metric_names: %v", err)
	}
}

func TestHeaderQuirks(t *testing.T) {
	// A byte order mark, quoted names, an unnamed index column (ignored),
	// excluded columns in any case, a name with nothing readable.
	p := newParser(t, "\xef\xbb\xbf\"time\";;\" Pressure (bar) \";Status;%", func(c *ingest.CSVConfig) {
		c.ExcludeColumns = []string{"status"}
	})
	if got := fmt.Sprint(p.metricNames()); got != "[Pressure_bar column_5]" {
		t.Fatalf("metrics %s", got)
	}
	if p.Columns()[p.timeCol] != "time" {
		t.Fatalf("time column %q: the byte order mark must go", p.Columns()[p.timeCol])
	}
}

func TestMetricName(t *testing.T) {
	for in, want := range map[string]string{
		"Volume Flow RateRMS": "Volume_Flow_RateRMS",
		"Pressure (bar)":      "Pressure_bar",
		"  temp °C ":          "temp_C",
		"net.bytes_recv":      "net.bytes_recv",
		"rtu-été/level":       "rtu-été_level",
		"_private":            "_private",
		"a  -- b":             "a_--_b",
		"%":                   "",
	} {
		if got := metricName(in); got != want {
			t.Errorf("metricName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSplit(t *testing.T) {
	p := &Parser{sep: ';'}
	for line, want := range map[string]string{
		"":               `[""]`,
		"a;b":            `["a" "b"]`,
		"a;":             `["a" ""]`,
		";":              `["" ""]`,
		`"a;b";c`:        `["a;b" "c"]`,
		`"say ""hi""";x`: `["say \"hi\"" "x"]`,
		`"";""`:          `["" ""]`,
		`x;"a";`:         `["x" "a" ""]`,
		` a ; b `:        `[" a " " b "]`,
		`a;"b`:           "csv_syntax",
		`a;b"`:           "csv_syntax",
		`"a"b`:           "csv_syntax",
		` "a"`:           "csv_syntax",
	} {
		got := ""
		if err := p.split([]byte(line)); err != nil {
			got = telemetry.ReasonOf(err)
		} else {
			got = fmt.Sprintf("%q", p.fields)
		}
		if got != want {
			t.Errorf("split(%q) = %s, want %s", line, got, want)
		}
	}
}

func TestSniff(t *testing.T) {
	for head, want := range map[string]bool{
		"datetime;a;b\n2020-03-09 10:14:33;1;2\n": true,
		"time,a\n":                         true,
		"\xef\xbb\xbftime\ta\n":            true,
		"\n\n  time|a\n\n1|2":              true,
		"time,a":                           true, // no newline yet: a short file
		`{"device":"d","metrics":{"x":1}}`: false,
		`[1,2]`:                            false,
		"not json\nnot json\n":             false, // one field: not a header
		`"device":"d","ts":1}` + "\n{\"device\":\"d\"}\n": false, // JSONL cut at the start
		"":        false,
		"\n \n":   false,
		`"a,b"`:   false, // one quoted field
		`"a,b,c`:  false, // a quote that does not close
		"a;b\n{x": false,
	} {
		if got := Sniff([]byte(head), 0); got != want {
			t.Errorf("Sniff(%q) = %v, want %v", head, got, want)
		}
	}
	if Sniff([]byte("time,a\n"), '|') {
		t.Error("a configured separator absent from the header still made it CSV")
	}
}

func TestSniffSeparator(t *testing.T) {
	for header, want := range map[string]byte{
		"a;b;c":         ';',
		"a,b,c":         ',',
		"a\tb\tc":       '\t',
		"a|b":           '|',
		`"x,y,z";a;b`:   ';', // commas inside quotes do not count
		"a,b;c":         ';', // a tie goes to ';'
		"single column": ';',
	} {
		if got := sniffSeparator([]byte(header)); got != want {
			t.Errorf("sniffSeparator(%q) = %q, want %q", header, got, want)
		}
	}
}

func TestCellValue(t *testing.T) {
	for in, want := range map[string]string{
		"1.5": "1.5", " -2 ": "-2", "+3": "3", ".5": "0.5", "1e3": "1000", "True": "1", "false": "0",
		"": "missing", "  ": "missing", "NaN": "missing", "nan": "missing", "NA": "missing", "N/A": "missing",
		"null": "missing", "None": "missing",
		"Inf": "bad", "+Inf": "bad", "-inf": "bad", "1e999": "bad", "ERR": "bad", "1,5": "bad", "-": "bad",
		"yes": "bad", "TRUEISH": "bad",
	} {
		v, st := CellValue([]byte(in))
		got := []string{fmt.Sprint(v), "missing", "bad"}[st]
		if got != want {
			t.Errorf("CellValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestDeviceNames(t *testing.T) {
	got := DeviceNames([]string{
		"/data/skab/valve1/0.csv", "/data/skab/valve2/0.csv", "/data/skab/valve1/15.csv",
		"/data/a/x/1.csv", "/data/b/x/1.csv.gz", "/data/skab/anomaly-free/anomaly-free.csv",
		"/data/skab/valve1/15.csv", "-", "/data/nostem",
	})
	want := []string{"valve1/0", "valve2/0", "15", "a/x/1", "b/x/1", "anomaly-free", "15", "stdin", "nostem"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	// A relative path names the same folders as its absolute form.
	t.Chdir(t.TempDir())
	rel := DeviceNames([]string{"0.csv", "sub/0.csv"})
	if !strings.HasSuffix(rel[0], "/0") || rel[1] != "sub/0" {
		t.Fatalf("relative paths: %q", rel)
	}
}

func TestTimeForms(t *testing.T) {
	newYork := func(c *ingest.CSVConfig) { c.TimeZone = "America/New_York" }
	for _, c := range []struct {
		layout func(*ingest.CSVConfig)
		in     string
		want   string // RFC 3339 in UTC, or the reject reason
	}{
		{nil, "2026-11-21 10:00:00", "2026-11-21T10:00:00Z"},
		{nil, "2026-11-21T10:00:00.123456789123", "2026-11-21T10:00:00.123456789Z"},
		{nil, "2026-11-21 10:00", "2026-11-21T10:00:00Z"},
		{nil, "2026-11-21", "2026-11-21T00:00:00Z"},
		{nil, "2026-11-21T10:00:00+01:30", "2026-11-21T08:30:00Z"},
		{nil, "2026-11-21t10:00:00z", "2026-11-21T10:00:00Z"},
		{nil, "2024-02-29 00:00:00", "2024-02-29T00:00:00Z"},
		{nil, "1795687200", "2026-11-26T10:00:00Z"},
		{nil, "1795687200123", "2026-11-26T10:00:00.123Z"},
		{nil, "1795687200123456", "2026-11-26T10:00:00.123456Z"},
		{nil, "1795687200123456789", "2026-11-26T10:00:00.123456789Z"},
		{nil, "1795687200.25", "2026-11-26T10:00:00.25Z"},
		{nil, "1795687200123.456789", "2026-11-26T10:00:00.123456789Z"},
		{nil, "1.7956872e9", "2026-11-26T10:00:00Z"},
		{nil, "1795687200.", "2026-11-26T10:00:00Z"},
		{nil, "-1", "bad_timestamp"},
		{nil, "1.2.3", "bad_timestamp"},
		{nil, "0", "1970-01-01T00:00:00Z"},
		{nil, "2023-02-29 00:00:00", "bad_timestamp"},
		{nil, "2026-11-21 10:00:60", "bad_timestamp"},
		{nil, "2026-11-21 10:00:00.", "bad_timestamp"},
		{nil, "2026-11-21 10:00:00 +01:00", "bad_timestamp"},
		{nil, "2026-11-21T10:00:00+0100", "bad_timestamp"},
		{nil, "2262-01-01 00:00:00", "bad_timestamp"},
		{nil, "1970-01-01T00:00:00+00:01", "bad_timestamp"},
		{nil, "99999999999999999999", "bad_timestamp"},
		{nil, "9.3e18", "bad_timestamp"},
		{nil, "Mon Jan 2", "bad_timestamp"},
		// Local times; New York moved to summer time on 2026-03-08 at 02:00.
		{newYork, "2026-03-08 01:59:59", "2026-03-08T06:59:59Z"},
		{newYork, "2026-03-08 03:00:00", "2026-03-08T07:00:00Z"},
		{newYork, "2026-03-08 03:00:00Z", "2026-03-08T03:00:00Z"},
		{func(c *ingest.CSVConfig) { c.TimeLayout = "rfc3339" }, "2026-11-21T10:00:00.5-02:00", "2026-11-21T12:00:00.5Z"},
		{func(c *ingest.CSVConfig) { c.TimeLayout = "rfc3339" }, "2026-11-21 10:00:00", "bad_timestamp"},
		{func(c *ingest.CSVConfig) { c.TimeLayout = "epoch_s" }, "1795687200123", "bad_timestamp"},
		{func(c *ingest.CSVConfig) { c.TimeLayout = "epoch_s" }, "17956872", "1970-07-27T20:01:12Z"},
		{func(c *ingest.CSVConfig) { c.TimeLayout = "epoch_ms" }, "1795687200", "1970-01-21T18:48:07.2Z"},
		{func(c *ingest.CSVConfig) { c.TimeLayout = "epoch_us" }, "1795687200000001", "2026-11-26T10:00:00.000001Z"},
		{func(c *ingest.CSVConfig) { c.TimeLayout = "epoch_ns" }, "1795687200000000001", "2026-11-26T10:00:00.000000001Z"},
		{func(c *ingest.CSVConfig) { c.TimeLayout = "02.01.2006 15:04"; c.TimeZone = "Europe/Berlin" }, "21.11.2026 10:00", "2026-11-21T09:00:00Z"},
		{func(c *ingest.CSVConfig) { c.TimeLayout = "02.01.2006 15:04" }, "2026-11-21 10:00", "bad_timestamp"},
	} {
		p := newParser(t, "t,a", c.layout)
		got := show(p, c.in+",1")
		if s, ok := strings.CutPrefix(got, "rejected "); ok {
			got = s
		} else {
			got = strings.Fields(got)[1]
		}
		if got != c.want {
			t.Errorf("%q: got %s, want %s", c.in, got, c.want)
		}
	}
}

func TestDaysSinceEpoch(t *testing.T) {
	for d := time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() < 2400; d = d.AddDate(0, 0, 13) {
		if got, want := telemetry.DaysFromCivil(d.Year(), int(d.Month()), d.Day()), d.Unix()/86400; got != want {
			t.Fatalf("%s: %d, want %d", d.Format(time.DateOnly), got, want)
		}
	}
}

func TestNoAllocationsPerRow(t *testing.T) {
	p := newParser(t, "datetime;Accelerometer1RMS;Current;Volume Flow RateRMS;anomaly", func(c *ingest.CSVConfig) { c.TimeZone = "Europe/Moscow" })
	lines := [][]byte{
		[]byte("2020-03-09 10:14:33;0.0265878;1.3302;32.0;0.0"),
		[]byte(`2020-03-09 10:14:34;"0.0261697";1.35399;32.0;0.0`),
	}
	allocs := testing.AllocsPerRun(100, func() {
		p.haveLast = false
		for _, l := range lines {
			if _, err := p.Parse(l); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per two rows, want 0", allocs)
	}
}
