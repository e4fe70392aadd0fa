#!/usr/bin/env bash
# Fetches Temporal's time-skipping test server (io.temporal:temporal-test-server, Java, from Maven
# Central) with its dependencies into the cache testkit/time-skipping.ts reads. Needs java and mvn.
set -euo pipefail
VERSION="${TEMPORAL_TEST_SERVER_VERSION:-1.38.0}"
DIR="${NIXFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nixfleet}/temporal-test-server"
mkdir -p "$DIR"
cat > "$DIR/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local</groupId><artifactId>nixfleet-test-server</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>io.temporal</groupId><artifactId>temporal-test-server</artifactId><version>${VERSION}</version></dependency>
  </dependencies>
</project>
POM
echo "fetching io.temporal:temporal-test-server:${VERSION} into $DIR/lib"
mvn -q -B -f "$DIR/pom.xml" dependency:copy-dependencies -DoutputDirectory="$DIR/lib"
echo "done: $(ls "$DIR/lib" | wc -l) jars"
