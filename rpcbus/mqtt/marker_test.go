package mqtt

import (
	"slices"
	"testing"
)

// FuzzDecodeMarker: a marker comes off the bus from anyone who may publish
// to the group's marker topics. Decoding never panics, and what decodes
// encodes back to itself.
func FuzzDecodeMarker(f *testing.F) {
	f.Add([]byte(nil))
	f.Add(encodeMarker(marker{Filters: []string{"$share/g/a/b", "vrpc~/orphans/g/+"}}))
	f.Add(encodeMarker(marker{Claim: "vrpc-abc"}))
	f.Add([]byte(`{"filters":[""]}`))
	f.Add([]byte(`{"filters":["a"],"claim":"b"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMarker(b)
		if err != nil {
			return
		}
		if len(b) == 0 {
			if m.Claim != "" || m.Filters != nil {
				t.Fatalf("empty payload decoded as %+v", m)
			}
			return
		}
		again, err := decodeMarker(encodeMarker(m))
		if err != nil || again.Claim != m.Claim || !slices.Equal(again.Filters, m.Filters) {
			t.Fatalf("%+v encodes to something that decodes as %+v, %v", m, again, err)
		}
	})
}

func TestDecodeMarker(t *testing.T) {
	for _, bad := range []string{`{}`, `{"filters":[]}`, `{"filters":["a"],"claim":"b"}`, `{"filters":[""]}`, `[`, `"x"`} {
		if _, err := decodeMarker([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	m, err := decodeMarker([]byte(`{"filters":["$share/g/t"]}`))
	if err != nil || !slices.Equal(m.Filters, []string{"$share/g/t"}) {
		t.Fatalf("got %+v, %v", m, err)
	}
}

func TestTopicMapping(t *testing.T) {
	for name, want := range map[string]string{"a": "a", "vrpc.requests.demo": "vrpc/requests/demo", ".a..b": "/a//b"} {
		got, err := mqttTopic(name)
		if err != nil || got != want {
			t.Errorf("mqttTopic(%q) = %q, %v; want %q", name, got, err, want)
		}
		if back := topicName(got); back != name {
			t.Errorf("topicName(%q) = %q, want %q", got, back, name)
		}
	}
}
