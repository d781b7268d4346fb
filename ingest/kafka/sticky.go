package kafka

import (
	"encoding/json"
	"slices"
	"sort"
	"sync"

	kafkago "github.com/segmentio/kafka-go"
)

// stickyBalancer spreads partitions evenly over the group's members and
// leaves each partition where it is unless it must move: a member reports
// the partitions it owns when it joins, and the leader keeps them there,
// moving only those of members that left and those needed to even out the
// counts. A partition that moves costs a changelog restore and, in the
// engine, the history of its devices; kafka-go's range and round-robin
// balancers reshuffle most partitions on every rebalance.
type stickyBalancer struct {
	mu    sync.Mutex
	owned map[string][]int // topic -> partitions this member owns
}

func (b *stickyBalancer) ProtocolName() string { return "vigil-sticky" }

func (b *stickyBalancer) UserData() ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return json.Marshal(b.owned)
}

// setOwned records the assignment of the generation just joined.
func (b *stickyBalancer) setOwned(assignments map[string][]kafkago.PartitionAssignment) {
	owned := make(map[string][]int, len(assignments))
	for topic, pas := range assignments {
		for _, pa := range pas {
			owned[topic] = append(owned[topic], pa.ID)
		}
	}
	b.mu.Lock()
	b.owned = owned
	b.mu.Unlock()
}

func (b *stickyBalancer) AssignGroups(members []kafkago.GroupMember, partitions []kafkago.Partition) kafkago.GroupMemberAssignments {
	out := kafkago.GroupMemberAssignments{}
	byTopic := map[string][]int{}
	for _, p := range partitions {
		byTopic[p.Topic] = append(byTopic[p.Topic], p.ID)
	}
	previous := make(map[string]map[string][]int, len(members)) // member -> topic -> partitions
	for _, m := range members {
		out[m.ID] = map[string][]int{}
		var owned map[string][]int
		if len(m.UserData) > 0 && json.Unmarshal(m.UserData, &owned) == nil {
			previous[m.ID] = owned
		}
	}
	topics := make([]string, 0, len(byTopic))
	for t := range byTopic {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, topic := range topics {
		parts := byTopic[topic]
		sort.Ints(parts)
		var subs []string
		for _, m := range members {
			if slices.Contains(m.Topics, topic) {
				subs = append(subs, m.ID)
			}
		}
		if len(subs) == 0 {
			continue
		}
		sort.Strings(subs)
		assignTopic(topic, parts, subs, previous, out)
	}
	return out
}

// assignTopic gives each of subs ⌊n/m⌋ or ⌈n/m⌉ partitions of topic,
// keeping previous owners where the counts allow.
func assignTopic(topic string, parts []int, subs []string, previous map[string]map[string][]int, out kafkago.GroupMemberAssignments) {
	exists := map[int]bool{}
	for _, p := range parts {
		exists[p] = true
	}
	quota, extra := len(parts)/len(subs), len(parts)%len(subs)
	claimed := map[int]bool{}
	kept := map[string][]int{}
	// Members that owned the most keep first, so they use up the ⌈n/m⌉ slots.
	order := slices.Clone(subs)
	sort.SliceStable(order, func(i, j int) bool { return len(previous[order[i]][topic]) > len(previous[order[j]][topic]) })
	for _, m := range order {
		limit := quota
		if extra > 0 {
			limit++
		}
		for _, p := range previous[m][topic] {
			if exists[p] && !claimed[p] && len(kept[m]) < limit {
				claimed[p] = true
				kept[m] = append(kept[m], p)
			}
		}
		if len(kept[m]) > quota {
			extra--
		}
	}
	var free []int
	for _, p := range parts {
		if !claimed[p] {
			free = append(free, p)
		}
	}
	for _, m := range subs {
		for len(kept[m]) < quota && len(free) > 0 {
			kept[m], free = append(kept[m], free[0]), free[1:]
		}
	}
	for _, m := range subs {
		if len(free) == 0 {
			break
		}
		if extra > 0 && len(kept[m]) == quota {
			kept[m], free = append(kept[m], free[0]), free[1:]
			extra--
		}
	}
	for _, m := range subs {
		if len(kept[m]) > 0 {
			sort.Ints(kept[m])
			out[m][topic] = kept[m]
		}
	}
}
