package detect

import (
	"strings"
	"testing"

	"github.com/vigil-ot/vigil/ingest"
)

// TestPeerNowFindsADeviceLeavingItsPeers: 30 devices of one group double
// their message rate together (a planned production increase, as a daily
// peak is), and during it one device's drops to zero. Against the group's
// long-run percentiles neither stands out (the statistic test is turned
// off here with an unreachable min_score); against its peers now, the
// device alone breaches, low, and clears when it is back, while the
// shift of the whole group raises nothing.
func TestPeerNowFindsADeviceLeavingItsPeers(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Peer.MinScore = 1e9
	cfg.Fleet.Enabled = false
	s := newSim(t, cfg, []string{"site-a/hw-1"}, 30, nil)
	s.warm(180)
	const victim = 7
	mut := func(m, i int, d *simDevice, r *ingest.Row) bool {
		r.Metrics[1].Value *= 2
		if i == victim && m >= 240 && m < 270 {
			r.Metrics[1].Value = 0
		}
		return true
	}
	s.run(180, 300, mut)

	var now []Alert
	for _, a := range s.sink.find(DetectorPeer, "", "", "") {
		if !strings.Contains(a.Message, "peers now") {
			t.Errorf("a peer alert that is not the now test's: %s", a.Message)
		}
		now = append(now, a)
	}
	if len(now) != 2 {
		t.Fatalf("want one peers-now alarm and its clear, got %d:\n%s", len(now), s.sink.dump())
	}
	raised, cleared := now[0], now[1]
	victimName := s.devices[victim].name
	if raised.Device != victimName || raised.Behavior != "msgs_sent" || raised.State != StateAlarm || raised.Score >= 0 {
		t.Errorf("alarm: %s %s %s score %.1f: %s", raised.Device, raised.Behavior, raised.State, raised.Score, raised.Message)
	}
	if raised.EventTime.Before(at(240)) || raised.EventTime.After(at(245)) {
		t.Errorf("alarm at %s, want within 5 minutes of %s", raised.EventTime, at(240))
	}
	if raised.Expected < 100 || raised.Expected > 140 {
		t.Errorf("expected %.0f now, want about twice the usual 60 (the peers doubled)", raised.Expected)
	}
	if cleared.Device != victimName || cleared.State != StateCleared || cleared.EventTime.Before(at(270)) {
		t.Errorf("clear: %s %s at %s", cleared.Device, cleared.State, cleared.EventTime)
	}
}

// TestPeerNowNeedsPeersReporting: with fewer devices in the window than
// peer.now.min_devices, the test judges nothing.
func TestPeerNowNeedsPeersReporting(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Peer.MinScore = 1e9
	cfg.Fleet.Enabled = false
	cfg.Peer.Now.MinDevices = 5
	s := newSim(t, cfg, []string{"site-a/hw-1"}, 4, nil)
	s.warm(180)
	s.run(180, 240, func(m, i int, d *simDevice, r *ingest.Row) bool {
		if i == 0 {
			r.Metrics[1].Value = 0
		}
		return true
	})
	if a := s.sink.find(DetectorPeer, "", "", ""); len(a) != 0 {
		t.Fatalf("a group of 4 judged a device:\n%s", s.sink.dump())
	}
}
