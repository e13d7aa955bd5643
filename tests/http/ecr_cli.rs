//! The `aws` CLI against the registry server's ECR API, as its users run it: a
//! repository with tag immutability and an exclusion, `get-login-password` into
//! `skopeo login`, a push, and the images described, listed, deleted.

use crate::common;

use std::process::Command;

use serde_json::{Value, json};

use super::api::push_image;
use super::auth::{ALICE_KEY, start};
use super::ecr::basic_api;

/// The `aws` CLI scripts/test installs (PyPI `awscli`, in a virtual environment), if any.
fn aws_cli() -> Option<String> {
    let path = std::env::var("WHARF_AWS_CLI").ok();
    if path.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the aws CLI test: scripts/test installs awscli and sets WHARF_AWS_CLI"
        );
        eprintln!("WHARF_AWS_CLI unset: skipping the aws CLI test (run scripts/test)");
    }
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aws_cli_and_skopeo_use_it_like_ecr() {
    let Some(aws) = aws_cli() else {
        return;
    };
    if !super::skopeo::have_skopeo() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let url = server.url();
    let run = |args: &[&str]| {
        let mut command = Command::new(&aws);
        command
            .args([
                "--endpoint-url",
                &url,
                "--region",
                "us-east-1",
                "--output",
                "json",
            ])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", ALICE_KEY.0)
            .env("AWS_SECRET_ACCESS_KEY", ALICE_KEY.1)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        let output = command.output().expect("run aws");
        let said = format!(
            "aws {}: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output, said)
    };
    let json_of = |args: &[&str]| {
        let (output, said) = run(args);
        assert!(output.status.success(), "{said}");
        serde_json::from_slice::<Value>(&output.stdout).unwrap_or(Value::Null)
    };

    let made = json_of(&[
        "ecr",
        "create-repository",
        "--repository-name",
        "team/cli",
        "--image-tag-mutability",
        "IMMUTABLE_WITH_EXCLUSION",
        "--image-tag-mutability-exclusion-filters",
        "filterType=WILDCARD,filter=latest",
    ]);
    assert_eq!(made["repository"]["repositoryName"], "team/cli", "{made}");
    let found = json_of(&[
        "ecr",
        "describe-repositories",
        "--repository-names",
        "team/cli",
    ]);
    let repository = &found["repositories"][0];
    assert_eq!(repository["imageTagMutability"], "IMMUTABLE_WITH_EXCLUSION");
    assert_eq!(
        repository["imageTagMutabilityExclusionFilters"],
        json!([{"filterType": "WILDCARD", "filter": "latest"}])
    );

    // get-login-password into skopeo login, then a push with the stored login.
    let (password, said) = run(&["ecr", "get-login-password"]);
    assert!(password.status.success(), "{said}");
    let authfile = dir.path().join("auth.json");
    let authfile = authfile.to_str().unwrap();
    let mut login = Command::new("skopeo")
        .args([
            "login",
            "--authfile",
            authfile,
            "--tls-verify=false",
            "--username",
            "AWS",
            "--password-stdin",
            server.host(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run skopeo login");
    {
        use std::io::Write;
        login
            .stdin
            .take()
            .unwrap()
            .write_all(&password.stdout)
            .unwrap();
    }
    let login = login.wait_with_output().unwrap();
    assert!(
        login.status.success(),
        "skopeo login: {}",
        String::from_utf8_lossy(&login.stderr)
    );
    let layout = super::skopeo::Layout::write();
    let dest = format!("docker://{}/team/cli:v1", server.host());
    let args = [
        "copy",
        "--all",
        "--preserve-digests",
        "--authfile",
        authfile,
        "--dest-tls-verify=false",
        &layout.reference(),
        &dest,
    ];
    let output = super::skopeo::run_skopeo(&args);
    assert!(
        output.status.success(),
        "{}",
        super::skopeo::describe(&args, &output)
    );

    // Another image: `latest` (excluded) moves to it, v1 does not.
    let alice = basic_api(&server, super::auth::ALICE.0, super::auth::ALICE.1);
    let other = push_image(&alice, "team/cli", "latest", 9).await;
    alice
        .send_manifest("team/cli", "latest", common::http::body(&other.manifest))
        .await
        .check(201);
    alice
        .send_manifest("team/cli", "v1", common::http::body(&other.manifest))
        .await
        .error(409, "TAG_IMMUTABLE");

    // What was pushed, as the CLI sees it.
    let images = json_of(&["ecr", "describe-images", "--repository-name", "team/cli"]);
    let details = images["imageDetails"].as_array().unwrap();
    assert!(
        details.iter().any(|d| d["imageTags"] == json!(["v1"])),
        "{images}"
    );
    let listed = json_of(&["ecr", "list-images", "--repository-name", "team/cli"]);
    assert!(
        listed["imageIds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["imageTag"] == "v1"),
        "{listed}"
    );
    let deleted = json_of(&[
        "ecr",
        "batch-delete-image",
        "--repository-name",
        "team/cli",
        "--image-ids",
        "imageTag=v1",
        "imageTag=nope",
    ]);
    assert_eq!(deleted["imageIds"][0]["imageTag"], "v1", "{deleted}");
    assert_eq!(
        deleted["failures"][0]["failureCode"], "ImageNotFound",
        "{deleted}"
    );
    let (refused, said) = run(&["ecr", "delete-repository", "--repository-name", "team/cli"]);
    assert!(
        !refused.status.success() && said.contains("RepositoryNotEmptyException"),
        "{said}"
    );
    json_of(&[
        "ecr",
        "delete-repository",
        "--repository-name",
        "team/cli",
        "--force",
    ]);
    let (gone, said) = run(&[
        "ecr",
        "describe-repositories",
        "--repository-names",
        "team/cli",
    ]);
    assert!(
        !gone.status.success() && said.contains("RepositoryNotFoundException"),
        "{said}"
    );
}
