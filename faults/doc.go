// Package faults proves vRPC's delivery guarantees under failure: it has the
// counting target and the call ledger that the fault-injection tests of this
// package and `vrpc bench --chaos` share.
//
// A Target is a gRPC service (the demo service) that counts how many times
// it executes each request message, how many calls it runs at once, and
// which vRPC server forwarded each one. A Stream makes a numbered stream of
// calls, each carrying a unique message and a deadline, and records how each
// ended: a correct reply, a wrong one, a status, or nothing at all by
// deadline plus a grace period (lost). Check joins the two into a Report:
// calls ok, failed (by code), lost, and duplicated (executed more than once).
//
// The tests (go test ./faults/) run each failure the README's Guarantees
// section speaks of against real parts, on every bus: an in-process Kafka
// (kfake), the machine's NATS, RabbitMQ, Redis and Mosquitto (each test
// with topics, groups and client ids of its own, deleted afterwards), vRPC
// servers in separate OS processes killed with SIGKILL, the machine's Redis
// as the shared dedup store, brokers the tests run themselves (nats-server,
// redis-server, mosquitto, a RabbitMQ node) stopped and started again on
// their data (for a few seconds, and for 30 s with calls whose deadline
// outlives it), a target stopped and started again, a server started late
// or offline for a minute, a slow target.
package faults
