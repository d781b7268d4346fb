package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/vigil-ot/vigil/detect"
)

// Member is one sink of a fan-out with its delivery policy.
type Member struct {
	Name string
	Sink detect.Sink
	// Optional members do not hold back delivery: after their attempts
	// their failures are logged and counted, not returned.
	Optional bool
	Retry    RetryConfig
}

// Fanout delivers every item to every member sink, concurrently, retrying
// each member with exponential backoff. Its Write returns nil only when
// every required member accepted every item; otherwise a
// *detect.DeliveryError names the items some required member did not
// accept. A retry sends a member only the items it did not accept. Like
// every detect.Sink, Fanout is not for concurrent Writes.
type Fanout struct {
	members []*fanoutMember
	logger  *slog.Logger
}

type fanoutMember struct {
	Member
	stats *sinkStats
}

// NewFanout returns a fan-out to sinks, all required, each retried until
// the context of Write ends.
func NewFanout(sinks ...detect.Sink) *Fanout {
	members := make([]Member, len(sinks))
	for i, s := range sinks {
		members[i] = Member{Name: fmt.Sprintf("sink-%d", i+1), Sink: s}
	}
	return NewFanoutOf(nil, members...)
}

// NewFanoutOf returns a fan-out to members; zero retry settings take the
// defaults of RetryConfig.
func NewFanoutOf(logger *slog.Logger, members ...Member) *Fanout {
	if logger == nil {
		logger = slog.Default()
	}
	f := &Fanout{logger: logger}
	for _, m := range members {
		if m.Retry.BackoffMin <= 0 {
			m.Retry.BackoffMin = 100 * time.Millisecond
		}
		if m.Retry.BackoffMax < m.Retry.BackoffMin {
			m.Retry.BackoffMax = max(10*time.Second, m.Retry.BackoffMin)
		}
		if m.Optional && m.Retry.MaxAttempts == 0 {
			m.Retry.MaxAttempts = 3
		}
		f.members = append(f.members, &fanoutMember{Member: m, stats: newSinkStats(m.Name)})
	}
	return f
}

func (f *Fanout) Write(ctx context.Context, out *detect.Output) error {
	if out.Len() == 0 {
		return nil
	}
	if len(f.members) == 1 {
		return f.finish(out, []error{f.members[0].deliver(ctx, out, f.logger)})
	}
	errs := make([]error, len(f.members))
	var wg sync.WaitGroup
	for i, m := range f.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.deliver(ctx, out, f.logger)
		}()
	}
	wg.Wait()
	return f.finish(out, errs)
}

// finish turns the members' final errors into Write's result: optional
// members' failures are logged, required members' failures returned.
func (f *Fanout) finish(out *detect.Output, errs []error) error {
	if allNil(errs) {
		return nil
	}
	failed := make(map[string]bool)
	var required []error
	for i, err := range errs {
		if err == nil {
			continue
		}
		m := f.members[i]
		ids := failedIDs(out, err)
		if m.Optional {
			f.logger.Warn("optional sink did not accept items; going on without it", "sink", m.Name, "items", len(ids), "error", err)
			continue
		}
		for _, id := range ids {
			failed[id] = true
		}
		required = append(required, err)
	}
	if len(required) == 0 {
		return nil
	}
	de := &detect.DeliveryError{Sink: "fanout", Err: errors.Join(required...)}
	for i := range out.Alerts {
		if id := out.Alerts[i].ID; failed[id] {
			de.Failed = append(de.Failed, id)
			delete(failed, id)
		}
	}
	for i := range out.Quarantine {
		if id := out.Quarantine[i].ID; failed[id] {
			de.Failed = append(de.Failed, id)
			delete(failed, id)
		}
	}
	return de
}

// deliver writes out to m until it accepts everything, its attempts run
// out or ctx ends, and returns the last error.
func (m *fanoutMember) deliver(ctx context.Context, out *detect.Output, logger *slog.Logger) error {
	defer m.stats.pending.Set(0)
	backoff := m.Retry.BackoffMin
	cur := out
	for attempt := 1; ; attempt++ {
		err := m.Sink.Write(ctx, cur)
		m.countDrills(cur, err)
		if err == nil {
			return nil
		}
		if m.Retry.MaxAttempts > 0 && attempt >= m.Retry.MaxAttempts {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		// Retry only what the sink did not accept.
		var de *detect.DeliveryError
		if errors.As(err, &de) && len(de.Failed) > 0 {
			cur = subset(cur, de.Failed)
		}
		m.stats.retries.Inc()
		m.stats.pending.Set(float64(cur.Len()))
		logger.Warn("sink did not accept items; retrying", "sink", m.Name, "attempt", attempt, "items", cur.Len(), "retry_in", backoff, "error", err)
		t := time.NewTimer(jitter(backoff))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		backoff = min(2*backoff, m.Retry.BackoffMax)
	}
}

// countDrills counts the drill alerts of out that m accepted in a write
// that returned err.
func (m *fanoutMember) countDrills(out *detect.Output, err error) {
	var failed []string
	if err != nil {
		failed = failedIDs(out, err)
	}
	n := 0
	for i := range out.Alerts {
		if out.Alerts[i].IsDrill() && !slices.Contains(failed, out.Alerts[i].ID) {
			n++
		}
	}
	if n > 0 {
		m.stats.drills.Add(n)
	}
}

// subset returns the items of out whose ids are in ids.
func subset(out *detect.Output, ids []string) *detect.Output {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	sub := &detect.Output{}
	for i := range out.Alerts {
		if want[out.Alerts[i].ID] {
			sub.Alerts = append(sub.Alerts, out.Alerts[i])
		}
	}
	for i := range out.Quarantine {
		if want[out.Quarantine[i].ID] {
			sub.Quarantine = append(sub.Quarantine, out.Quarantine[i])
		}
	}
	if sub.Len() == 0 {
		return out // ids we do not know: retry everything rather than nothing
	}
	return sub
}

// failedIDs returns the ids err names, or every id of out.
func failedIDs(out *detect.Output, err error) []string {
	var de *detect.DeliveryError
	if errors.As(err, &de) && len(de.Failed) > 0 {
		return de.Failed
	}
	return deliveryErrorAll("", out, err).Failed
}

// Close closes every member and returns their errors joined.
func (f *Fanout) Close() error {
	var errs []error
	for _, m := range f.members {
		if err := m.Sink.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func allNil(errs []error) bool {
	for _, err := range errs {
		if err != nil {
			return false
		}
	}
	return true
}
