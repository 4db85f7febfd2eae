# The device nodes of a umockdev fixture, one "NAME MAJOR MINOR" line each (NAME relative to
# /dev): every block with an N: line, major:minor from its dev attribute.
#   awk -f tests/fakehw/fixture-nodes.awk FIXTURE.umockdev
# Used by run-in-fakehw.sh and tests/vm/make-payload.sh.
function flush() { if (n != "" && dev != "") print n, dev; n = ""; dev = "" }
/^P: / { flush() }
/^N: / { n = substr($0, 4); sub(/=.*/, "", n) }
/^A: dev=/ { dev = substr($0, 8); sub(/\\n$/, "", dev); sub(/:/, " ", dev) }
END { flush() }
