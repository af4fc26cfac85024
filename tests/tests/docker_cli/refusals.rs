//! What swarmkeep does not build yet, and bad requests: clear errors, nothing applied.

use std::time::Duration;

use swarmkeep_tests::docker::{self, http};
use swarmkeep_tests::eventually;

use super::*;

#[test]
fn unsupported_and_bad_requests_get_clear_errors() {
    if docker::skip() {
        return;
    }
    let (d, _) = docker_swarm();
    let sock = d.docker_socket();
    // Encrypted overlays are not built: said plainly, nothing made.
    let encrypted = d.docker(&["network", "create", "-d", "overlay", "--opt", "encrypted", "sec"]);
    assert_eq!(
        encrypted.stderr,
        "Error response from daemon: rpc error: code = InvalidArgument desc = network driver option \"encrypted\" is not supported yet\n"
    );
    // One port published twice, by the mesh and on the node: swarmkit's words.
    let twice = d.docker(&[
        "service",
        "create",
        "-d",
        "--publish",
        "8081:80",
        "--publish",
        "mode=host,target=81,published=8081",
        "bb",
        "sleep",
        "1",
    ]);
    assert!(
        twice
            .stderr
            .contains("EndpointSpec: duplicate published ports provided"),
        "{twice:?}"
    );
    // A constraint without an operator: swarmkit's words.
    let constraint = d.docker(&[
        "service",
        "create",
        "-d",
        "--constraint",
        "node.role",
        "bb",
        "sleep",
        "1",
    ]);
    assert!(
        constraint
            .stderr
            .contains("constraint expected one operator from ==, !="),
        "{constraint:?}"
    );
    let net = d.docker(&["service", "create", "-d", "--network", "foo", "bb", "sleep", "1"]);
    assert_eq!(net.stderr, "Error response from daemon: network foo not found\n");
    assert_eq!(d.docker(&["service", "ls", "-q"]).ok(), "", "nothing half-made");
    let netls = d.docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(
        netls.ok(),
        "bridge\ndocker_gwbridge\nhost\ningress\nnone\n",
        "only the predefined networks (golden services-2.txt)"
    );
    d.docker(&["service", "create", "-d", "--name", "s1", "bb", "sleep", "1000"])
        .ok();
    let logs = d.docker(&["service", "logs", "nope"]);
    assert_eq!(logs.stderr, "no such task or service: nope\n");
    let rollback = d.docker(&["service", "rollback", "s1"]);
    assert!(
        rollback.stderr.contains("does not have a previous spec"),
        "{rollback:?}"
    );

    // Raw HTTP: unknown routes, bad JSON, bad filters, stale versions.
    let (status, head, body) = http(&sock, "GET", "/v1.41/nope", None);
    assert_eq!(
        (status, body.as_slice()),
        (404, &b"{\"message\":\"page not found\"}\n"[..])
    );
    assert!(head.contains("Content-Type: application/json") || head.contains("content-type: application/json"));
    let (status, head, body) = http(&sock, "HEAD", "/_ping", None);
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert!(head.to_ascii_lowercase().contains("api-version: 1.41"), "{head}");
    let (status, _, body) = http(&sock, "GET", "/_ping", None);
    assert_eq!((status, body.as_slice()), (200, &b"OK"[..]));
    let (status, _, _) = http(&sock, "POST", "/v1.41/secrets/create", Some(b"{not json"));
    assert_eq!(status, 400);
    let (status, _, body) = http(
        &sock,
        "GET",
        "/secrets?filters=%7B%22bogus%22%3A%7B%22x%22%3Atrue%7D%7D",
        None,
    );
    assert_eq!(
        (status, body.as_slice()),
        (400, &b"{\"message\":\"invalid filter 'bogus'\"}\n"[..])
    );
    let (status, _, body) = http(
        &sock,
        "POST",
        "/v1.41/services/s1/update?version=1",
        Some(b"{\"Name\":\"s1\",\"TaskTemplate\":{\"ContainerSpec\":{\"Image\":\"bb\"}}}"),
    );
    assert_eq!(status, 500, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("update out of sequence"));
    let image = d.docker(&[
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
        "s1",
    ]);
    // (Pinned to its digest by the CLI at create.)
    assert!(
        image.ok().starts_with("bb:latest"),
        "a refused update changed something: {image:?}"
    );
    let (status, _, body) = http(&sock, "POST", "/v1.41/services/s1/update", Some(b"{}"));
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (
            400,
            "{\"message\":\"invalid service version '': strconv.ParseUint: parsing \\\"\\\": invalid syntax\"}\n"
        ),
        "the version is required"
    );
    let (status, _, body) = http(&sock, "GET", "/v1.43/info", None);
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (
            400,
            "{\"message\":\"client version 1.43 is too new. Maximum supported API version is 1.41\"}\n"
        )
    );
    let huge = d.docker(&["service", "create", "-d", "--replicas", "100000", "bb", "sleep", "1"]);
    assert_eq!(
        huge.stderr,
        "Error response from daemon: rpc error: code = InvalidArgument desc = replicas must be at most 10000\n"
    );
    // `--force` replaces the tasks even though nothing else changed.
    let before = d.docker(&["service", "ps", "-q", "s1"]).ok().to_string();
    d.docker(&["service", "update", "-d", "--force", "s1"]).ok();
    let force = d.docker(&[
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.ForceUpdate}}",
        "s1",
    ]);
    assert_eq!(force.ok(), "1\n");
    assert!(eventually(Duration::from_secs(15), || {
        let ps = d
            .docker(&["service", "ps", "--format", "{{.ID}} {{.DesiredState}}", "s1"])
            .stdout;
        ps.lines().count() == 2
            && ps
                .lines()
                .any(|l| l.ends_with(" Running") && !before.contains(&l[..12]))
    }));
}
