package amqp

// SetOnDeclare makes b tell f the name of every durable queue it declares,
// so that tests can delete them. Call it before b subscribes.
func SetOnDeclare(b *Bus, f func(queue string)) { b.onDeclare = f }
