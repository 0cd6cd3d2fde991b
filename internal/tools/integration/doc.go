// Package integration holds symroute's tests against real parts: systemd-networkd and dbus-daemon in network
// namespaces, the kernel's routing, and real packets. They need root and run in CI.
package integration
