package nats

// KnownTopics lists the topics whose stream b made sure of, for tests to
// delete the streams they created.
func (b *Bus) KnownTopics() []string {
	var topics []string
	b.known.Range(func(k, _ any) bool {
		topics = append(topics, k.(string))
		return true
	})
	return topics
}

// StreamName is streamName, for tests.
var StreamName = streamName
