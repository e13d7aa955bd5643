//! os-release: the files of real distributions, read as a shell that sources them reads
//! them, and hostile files.

use std::path::Path;

use wharf::scan::inventory::os_release::{MAX_ASSIGNMENTS, MAX_VALUE_LEN, parse};
use wharf::scan::package::OsRelease;

use super::{have, run};

/// `etc/os-release` of Debian 12 as `debian:12.5` ships it.
const DEBIAN_12: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"#;

/// Debian testing has no `VERSION_ID`.
const DEBIAN_TRIXIE: &str = r#"PRETTY_NAME="Debian GNU/Linux trixie/sid"
NAME="Debian GNU/Linux"
VERSION_CODENAME=trixie
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"#;

const UBUNTU_22_04: &str = r#"PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=jammy
"#;

const ALPINE_3_19: &str = r#"NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.19.1
PRETTY_NAME="Alpine Linux v3.19"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
"#;

const ROCKY_9: &str = r#"NAME="Rocky Linux"
VERSION="9.3 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"
ANSI_COLOR="0;32"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
HOME_URL="https://rockylinux.org/"
BUG_REPORT_URL="https://bugs.rockylinux.org/"
SUPPORT_END="2032-05-31"
ROCKY_SUPPORT_PRODUCT="Rocky-Linux-9"
ROCKY_SUPPORT_PRODUCT_VERSION="9.3"
REDHAT_SUPPORT_PRODUCT="Rocky Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.3"
"#;

const AMAZON_LINUX_2023: &str = r#"NAME="Amazon Linux"
VERSION="2023"
ID="amzn"
ID_LIKE="fedora"
VERSION_ID="2023"
PLATFORM_ID="platform:al2023"
PRETTY_NAME="Amazon Linux 2023"
ANSI_COLOR="0;33"
CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2023"
HOME_URL="https://aws.amazon.com/linux/"
BUG_REPORT_URL="https://github.com/amazonlinux/amazon-linux-2023"
SUPPORT_END="2028-03-15"
"#;

/// Every way of quoting and escaping the format allows, and a comment.
const QUOTING: &str = r#"# written by hand
ID='single quoted $HOME \n'
VERSION_ID=bare\"escapes\$
VERSION_CODENAME=""
PRETTY_NAME="double \"quotes\" \$dollar \`tick\` \\back \n kept"
ID_LIKE="  rhel   fedora "
"#;

fn release(
    id: &str,
    version_id: Option<&str>,
    codename: Option<&str>,
    id_like: &[&str],
    pretty_name: &str,
) -> OsRelease {
    OsRelease {
        id: id.to_owned(),
        version_id: version_id.map(str::to_owned),
        version_codename: codename.map(str::to_owned),
        id_like: id_like.iter().map(|s| (*s).to_owned()).collect(),
        pretty_name: Some(pretty_name.to_owned()),
    }
}

#[test]
fn real_distributions() {
    let cases = [
        (
            DEBIAN_12,
            release(
                "debian",
                Some("12"),
                Some("bookworm"),
                &[],
                "Debian GNU/Linux 12 (bookworm)",
            ),
        ),
        (
            DEBIAN_TRIXIE,
            release(
                "debian",
                None,
                Some("trixie"),
                &[],
                "Debian GNU/Linux trixie/sid",
            ),
        ),
        (
            UBUNTU_22_04,
            release(
                "ubuntu",
                Some("22.04"),
                Some("jammy"),
                &["debian"],
                "Ubuntu 22.04.4 LTS",
            ),
        ),
        (
            ALPINE_3_19,
            release("alpine", Some("3.19.1"), None, &[], "Alpine Linux v3.19"),
        ),
        (
            ROCKY_9,
            release(
                "rocky",
                Some("9.3"),
                None,
                &["rhel", "centos", "fedora"],
                "Rocky Linux 9.3 (Blue Onyx)",
            ),
        ),
        (
            AMAZON_LINUX_2023,
            release("amzn", Some("2023"), None, &["fedora"], "Amazon Linux 2023"),
        ),
        (
            QUOTING,
            release(
                "single quoted $HOME \\n",
                Some("bare\"escapes$"),
                None,
                &["rhel", "fedora"],
                "double \"quotes\" $dollar `tick` \\back \\n kept",
            ),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(parse(text.as_bytes()), Ok(expected), "{text}");
    }
}

/// Prints the five values a shell sourcing the file sees.
const SHELL_PRINT: &str =
    r#". "$1" && printf '%s\n' "$ID" "$VERSION_ID" "$VERSION_CODENAME" "$ID_LIKE" "$PRETTY_NAME""#;

#[test]
fn values_are_what_a_shell_sourcing_the_file_sees() {
    if !have("sh", &["-c", "true"], "the shell comparison") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let this_machines = std::fs::read_to_string("/etc/os-release").ok();
    let texts = [
        DEBIAN_12,
        DEBIAN_TRIXIE,
        UBUNTU_22_04,
        ALPINE_3_19,
        ROCKY_9,
        AMAZON_LINUX_2023,
        QUOTING,
    ]
    .into_iter()
    .chain(this_machines.as_deref());
    for text in texts {
        let file = dir.path().join("os-release");
        std::fs::write(&file, text).unwrap();
        let printed = run(
            "sh",
            &["-c", SHELL_PRINT, "sh", file.to_str().unwrap()],
            Path::new("/"),
        );
        let os = parse(text.as_bytes()).unwrap();
        let or_empty = |value: &Option<String>| value.clone().unwrap_or_default();
        let ours = [
            os.id.clone(),
            or_empty(&os.version_id),
            or_empty(&os.version_codename),
            os.id_like.join(" "),
            or_empty(&os.pretty_name),
        ];
        let shells: Vec<String> = printed.lines().map(str::to_owned).collect();
        // The shell keeps ID_LIKE's spacing; the split list does not.
        let shell_id_like = shells[3].split_whitespace().collect::<Vec<_>>().join(" ");
        let shells = [
            &shells[0],
            &shells[1],
            &shells[2],
            &shell_id_like,
            &shells[4],
        ];
        assert_eq!(ours.each_ref(), shells, "{text}");
    }
}

#[test]
fn the_last_assignment_wins_and_unread_lines_are_not_decoded() {
    let text = b"ID=first\nNAME=\"Caf\xe9 OS\"\nID=second\nVERSION_ID=1\nVERSION_ID=\n";
    let os = parse(text).unwrap();
    assert_eq!((os.id.as_str(), os.version_id), ("second", None));
}

#[test]
fn malformed_files_name_their_line() {
    let long = format!("ID={}\n", "x".repeat(MAX_VALUE_LEN + 1));
    let many = "# comment\nX=1\n".repeat(MAX_ASSIGNMENTS) + "ID=debian\n";
    let cases: [(&[u8], &str); 8] = [
        (b"NAME=x\n", "no ID"),
        (b"ID=\"\"\n", "no ID"),
        (
            b"ID=debian\nthis line\n",
            "line 2: not a KEY=value assignment",
        ),
        (
            b"ID=\"debian\n",
            "line 1: the value has an opening quote but does not end with its closing one",
        ),
        (
            b"ID=\"deb\"ian\"\n",
            "line 1: the value has an unescaped `\"` inside double quotes",
        ),
        (
            b"ID=deb\\\n",
            "line 1: the value ends with a lone backslash",
        ),
        (b"ID=deb\xffian\n", "line 1: the value is not UTF-8"),
        (
            long.as_bytes(),
            "line 1: the value is longer than 1024 bytes",
        ),
    ];
    for (text, reason) in cases {
        let error = parse(text).unwrap_err();
        assert_eq!(
            (error.format, error.reason.as_str()),
            ("os-release", reason)
        );
    }
    let error = parse(many.as_bytes()).unwrap_err();
    assert_eq!(error.reason, "line 2049: more than 1024 assignments");
}
