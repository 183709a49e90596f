package main

// Schedules and timezones must work in minimal containers that ship no
// zoneinfo: embed the IANA database in the binary.
import _ "time/tzdata"
