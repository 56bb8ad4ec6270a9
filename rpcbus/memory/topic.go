package memory

import (
	"slices"
	"sort"
)

// topic is a log of records with offsets, like one Kafka partition. All
// fields are guarded by broker.mu.
type topic struct {
	name   string
	log    []record // log[i] has offset base+i
	base   int64
	groups map[string]*group
}

// topic returns the topic called name, creating it. br.mu must be held.
func (br *broker) topic(name string) *topic {
	t := br.topics[name]
	if t == nil {
		t = &topic{name: name, groups: map[string]*group{}}
		br.topics[name] = t
	}
	return t
}

func (t *topic) end() int64 { return t.base + int64(len(t.log)) }

func (t *topic) at(off int64) *record { return &t.log[off-t.base] }

// group returns the group called name, creating it at the oldest record
// the topic keeps (Kafka's reset to earliest) published at or after since
// (Unix ns; zero for no bound).
func (t *topic) group(name string, private bool, since int64) *group {
	g := t.groups[name]
	if g == nil {
		start := t.base + int64(sort.Search(len(t.log), func(i int) bool { return t.log[i].at >= since }))
		g = &group{t: t, name: name, private: private, next: start, committed: start, acked: map[int64]struct{}{}}
		t.groups[name] = g
	}
	return g
}

// trim drops the records every group has acknowledged. A topic without
// groups keeps everything: a group to come starts from the oldest record.
func (t *topic) trim() {
	if len(t.groups) == 0 {
		return
	}
	low := t.end()
	for _, g := range t.groups {
		low = min(low, g.committed)
	}
	n := low - t.base
	if n <= 0 {
		return
	}
	clear(t.log[:n]) // let the payloads go before append reallocates
	t.log = t.log[n:]
	if len(t.log) == 0 {
		t.log = nil
	}
	t.base = low
}

// group is a consumer group's position in one topic. All fields are
// guarded by broker.mu.
type group struct {
	t       *topic
	name    string
	private bool // made for a subscription without Group; dies with it

	next      int64              // lowest offset never handed out
	committed int64              // every offset below it is acknowledged
	acked     map[int64]struct{} // acknowledged offsets above committed
	redeliver []int64            // handed out, given back unacknowledged; sorted
	members   []*subscription
	wakeNext  int // the member Publish wakes first (see Publish)
}

// take picks the offset to hand out next: given-back ones first, oldest
// first, then new ones.
func (g *group) take() (int64, bool) {
	if len(g.redeliver) > 0 {
		off := g.redeliver[0]
		g.redeliver = g.redeliver[1:]
		if len(g.redeliver) == 0 {
			g.redeliver = nil
		}
		return off, true
	}
	if g.next < g.t.end() {
		g.next++
		return g.next - 1, true
	}
	return 0, false
}

// giveBack queues offsets handed out but never acknowledged for another
// member.
func (g *group) giveBack(offs []int64) {
	g.redeliver = append(g.redeliver, offs...)
	slices.Sort(g.redeliver)
	for _, s := range g.members {
		signal(s.wake)
	}
}

// commit records that off is acknowledged and moves committed past every
// acknowledged offset in a row, like a Kafka commit of marked records.
func (g *group) commit(off int64) {
	if off != g.committed {
		g.acked[off] = struct{}{}
		return
	}
	g.committed++
	for {
		if _, ok := g.acked[g.committed]; !ok {
			break
		}
		delete(g.acked, g.committed)
		g.committed++
	}
}

func (g *group) leave(s *subscription) {
	g.members = slices.DeleteFunc(g.members, func(m *subscription) bool { return m == s })
	if g.private {
		delete(g.t.groups, g.name)
	}
}
