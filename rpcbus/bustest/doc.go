// Package bustest is the conformance suite of rpcbus backends: the
// behaviour vclient and vserver rely on, checked the same way on every bus.
//
// Every backend's tests call Run with a function that connects a new bus to
// one broker, and the Features the backend honestly lacks:
//
//	func TestConformance(t *testing.T) {
//		t.Parallel()
//		addr := startBroker(t) // one broker for the whole run
//		bustest.Run(t, func(t *testing.T) rpcbus.Bus {
//			b, err := rpcbus.New(rpcbus.Config{Type: "mybus", Brokers: []string{addr}})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return b
//		}, bustest.Features{})
//	}
//
// Several buses in one subtest stand for several processes: a client, two
// servers of one group, a server restarted. Subtests run in parallel, each
// on topics, groups and inboxes of its own (names with a random suffix), so
// they never see each other's messages. The context given to Subscribe and
// Inbox ends as soon as they return: it bounds the call, not the
// subscription.
//
// A Features flag skips the tests a backend cannot pass, saying so; it
// never loosens a check in a test that runs. Waits are eventual with
// generous limits, which only turn a hang into a failure: no check depends
// on how fast the machine is.
//
// # Goroutine leaks
//
// The suite closes every subscription, inbox and bus it opens, and checks
// that Close stops deliveries. It cannot count goroutines itself while its
// subtests run in parallel, so a backend's test package must check for
// leaks once every test has finished, in TestMain:
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
//
// # Duplicates
//
// Buses deliver at least once, but a message is delivered again only when
// the member holding it goes away unacknowledged (or, on buses that have
// one, its acknowledgement deadline passes: see Features.RedeliveryTimeout).
// Tests hold deliveries only briefly, and only those about redelivery close
// a member that holds any, so everywhere else a message delivered twice is
// an error.
package bustest
