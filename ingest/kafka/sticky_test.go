package kafka

import (
	"encoding/json"
	"testing"

	kafkago "github.com/segmentio/kafka-go"
)

func member(id string, owned map[string][]int) kafkago.GroupMember {
	ud, _ := json.Marshal(owned)
	return kafkago.GroupMember{ID: id, Topics: []string{"t"}, UserData: ud}
}

func partitionsOf(n int) []kafkago.Partition {
	var ps []kafkago.Partition
	for i := 0; i < n; i++ {
		ps = append(ps, kafkago.Partition{Topic: "t", ID: i})
	}
	return ps
}

func checkAssignment(t *testing.T, got kafkago.GroupMemberAssignments, n int) {
	t.Helper()
	seen := map[int]string{}
	lo, hi := n, 0
	for m, topics := range got {
		for _, p := range topics["t"] {
			if o, dup := seen[p]; dup {
				t.Fatalf("partition %d given to %s and %s", p, o, m)
			}
			seen[p] = m
		}
		lo, hi = min(lo, len(topics["t"])), max(hi, len(topics["t"]))
	}
	if len(seen) != n {
		t.Fatalf("%d of %d partitions assigned: %v", len(seen), n, got)
	}
	if hi-lo > 1 {
		t.Fatalf("unbalanced: %v", got)
	}
}

func TestStickyBalancerKeepsPartitionsWhenAMemberLeaves(t *testing.T) {
	var b stickyBalancer
	got := b.AssignGroups([]kafkago.GroupMember{
		member("b", map[string][]int{"t": {2, 3}}),
		member("c", map[string][]int{"t": {4, 5}}),
		// a, which owned 0 and 1, was killed
	}, partitionsOf(6))
	checkAssignment(t, got, 6)
	for m, want := range map[string][]int{"b": {2, 3}, "c": {4, 5}} {
		for _, p := range want {
			found := false
			for _, q := range got[m]["t"] {
				found = found || q == p
			}
			if !found {
				t.Errorf("%s lost partition %d although it stayed: %v", m, p, got)
			}
		}
	}
}

func TestStickyBalancerNewMemberTakesOnlyWhatEvensOut(t *testing.T) {
	var b stickyBalancer
	got := b.AssignGroups([]kafkago.GroupMember{
		member("a", map[string][]int{"t": {0, 1, 2}}),
		member("b", map[string][]int{"t": {3, 4, 5}}),
		member("c", nil),
	}, partitionsOf(6))
	checkAssignment(t, got, 6)
	moved := 0
	for _, p := range got["c"]["t"] {
		_ = p
		moved++
	}
	if moved != 2 {
		t.Errorf("the new member got %d partitions, want 2: %v", moved, got)
	}
	if len(got["a"]["t"]) != 2 || len(got["b"]["t"]) != 2 {
		t.Errorf("not even: %v", got)
	}
}

func TestStickyBalancerConflictingClaims(t *testing.T) {
	var b stickyBalancer
	got := b.AssignGroups([]kafkago.GroupMember{
		member("a", map[string][]int{"t": {0, 1, 2, 9}}), // 9 no longer exists
		member("b", map[string][]int{"t": {1, 2}}),
		{ID: "c", Topics: []string{"t"}, UserData: []byte("not json")},
	}, partitionsOf(5))
	checkAssignment(t, got, 5)
}
