package detect

import (
	"slices"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
)

// TestSharedCertificateNotFromLaterUses: device 10 starts using device
// 9's certificate at minute 40. Read in event-time order (a replay),
// device 9's report of 40:05 comes before the first shared use (40:10)
// and is clean; its alarm starts at 41:05. Read from two partitions, the
// sharer's two minutes ahead (as a Kafka consumer may), that report was
// judged against the use of 40:10, which it could not have seen, and its
// alarm started a minute early, under another id. A device is judged on
// the uses of the certificate up to its own report's time. (The other
// way round, uses before a report that are read after it, still move the
// alarm's start: see identity.go.)
func TestSharedCertificateNotFromLaterUses(t *testing.T) {
	const victim, sharer = 9, 10 // partitions 1 and 0; in a minute, the victim's report comes first
	identity := func(partitioned bool) []string {
		s := newSim(t, DefaultConfig(), twoGroups[:1], 16, nil)
		if partitioned {
			s.partition = func(i int) int32 { return int32(i % 2) }
			s.batchMinutes = 2
		}
		s.run(0, 60, func(m, i int, d *simDevice, r *ingest.Row) bool {
			r.Cert = "sha256:" + d.name
			switch i {
			case sharer:
				r.TimeNanos = at(m).Add(10 * time.Second).UnixNano()
				if m >= 40 {
					r.Cert = "sha256:" + s.devices[victim].name
				}
			case victim:
				r.TimeNanos = at(m).Add(5 * time.Second).UnixNano()
			}
			return true
		})
		var ids []string
		for _, a := range s.sink.find(DetectorIdentity, behaviorSharedCert, "", "") {
			ids = append(ids, a.ID+" "+a.State+" "+a.Device+" from "+a.AlarmStart.Format(time.TimeOnly))
		}
		slices.Sort(ids)
		return ids
	}
	inOrder, partitioned := identity(false), identity(true)
	if len(inOrder) == 0 {
		t.Fatal("no shared-certificate alarm: the test no longer exercises it")
	}
	if !slices.Equal(inOrder, partitioned) {
		t.Fatalf("shared-certificate alerts judged on uses after the report:\nevent-time order %v\npartitioned      %v", inOrder, partitioned)
	}
}
