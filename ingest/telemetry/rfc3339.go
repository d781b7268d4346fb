package telemetry

// parseRFC3339UTC reads the form nearly every producer sends,
// YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z, as Unix nanoseconds, about five times
// faster than time.Parse. ok is false for anything else (offsets, lower
// case, a leap second, more than nine fraction digits, a bad date), and
// the caller then asks time.Parse, which stays the reference;
// FuzzParseRFC3339UTC checks the two agree on whatever this accepts.
func parseRFC3339UTC(b []byte) (nanos int64, year int, ok bool) {
	if len(b) < 20 {
		return 0, 0, false
	}
	minute, year, ok := parseMinuteUTC(b[:16])
	if !ok {
		return 0, 0, false
	}
	ns, ok := parseSecondsZ(b[16:])
	if !ok {
		return 0, 0, false
	}
	return minute*1e9 + ns, year, true
}

// parseMinuteUTC reads YYYY-MM-DDTHH:MM as the Unix time in seconds at the
// start of that minute.
func parseMinuteUTC(b []byte) (secs int64, year int, ok bool) {
	if len(b) != 16 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' {
		return 0, 0, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	if !(ok1 && ok2 && ok3 && ok4 && ok5) ||
		month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month) ||
		hour > 23 || minute > 59 {
		return 0, 0, false
	}
	days := DaysFromCivil(year, month, day)
	return days*86400 + int64(hour)*3600 + int64(minute)*60, year, true
}

// parseSecondsZ reads :SS[.f{1,9}]Z as nanoseconds into the minute.
func parseSecondsZ(b []byte) (int64, bool) {
	if len(b) < 4 || b[0] != ':' || b[len(b)-1] != 'Z' {
		return 0, false
	}
	sec, ok := digits(b[1:3])
	if !ok || sec > 59 {
		return 0, false
	}
	var frac int64
	if rest := b[3 : len(b)-1]; len(rest) > 0 {
		if rest[0] != '.' || len(rest) < 2 || len(rest) > 10 {
			return 0, false
		}
		f, okf := digits(rest[1:])
		if !okf {
			return 0, false
		}
		frac = int64(f)
		for range 10 - len(rest) {
			frac *= 10
		}
	}
	return int64(sec)*1e9 + frac, true
}

// minuteCache remembers the minute (YYYY-MM-DDTHH:MM) of the last
// timestamp it parsed and its value. Telemetry arrives in time order, so
// consecutive messages mostly share the minute and only the seconds need
// reading; the date arithmetic and twelve of the digits are skipped. A nil
// *minuteCache parses without remembering. FuzzMinuteCache checks it
// against parseRFC3339UTC.
type minuteCache struct {
	prefix [16]byte
	secs   int64 // parseMinuteUTC(prefix)
	year   int
	valid  bool
}

// parse is parseRFC3339UTC.
func (c *minuteCache) parse(b []byte) (nanos int64, year int, ok bool) {
	if c == nil || len(b) < 20 {
		return parseRFC3339UTC(b)
	}
	if !c.valid || string(b[:16]) != string(c.prefix[:]) {
		secs, year, ok := parseMinuteUTC(b[:16])
		if !ok {
			return 0, 0, false
		}
		copy(c.prefix[:], b[:16])
		c.secs, c.year, c.valid = secs, year, true
	}
	ns, ok := parseSecondsZ(b[16:])
	if !ok {
		return 0, 0, false
	}
	return c.secs*1e9 + ns, c.year, true
}

// digits reads b as a decimal number of ASCII digits only.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// DaysInMonth returns the days of month (1-12) of year in the proleptic
// Gregorian calendar.
func DaysInMonth(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// DaysFromCivil returns the days from 1970-01-01 to the given proleptic
// Gregorian date (Howard Hinnant's days_from_civil), for any year.
func DaysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
