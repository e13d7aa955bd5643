//! The lifecycle planner over 100,000 images and 10 rules (target: under 100 ms).
//! Same-run baseline: sorting the 100,000 push times once, the least any keep-N rule
//! must do. `cargo bench --bench lifecycle`.

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use wharf::lifecycle::plan;
use wharf::{LifecycleImage, LifecycleInventory, LifecyclePolicy};

const DAY: Duration = Duration::from_secs(86_400);

fn inventory(n: u64) -> LifecycleInventory {
    let now = UNIX_EPOCH + 20_000 * DAY;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let images = (0..n)
        .map(|i| {
            let r = next();
            let tags: Vec<String> = match r % 5 {
                0 => vec![],
                1 => vec![format!("release-{i}")],
                2 => vec![format!("dev-{i}"), format!("feature-{}", r % 97)],
                3 => vec![format!("prod-{i}"), "stable".into()],
                _ => vec![format!("v{}.{}.{}", i % 7, i % 13, i)],
            };
            let mut image = LifecycleImage::new(
                format!("sha256:{i:064x}"),
                &[],
                now - Duration::from_secs(r % (400 * 86_400)),
            );
            image.tags = tags;
            if r % 3 == 0 {
                image.last_pulled_at = Some(now - Duration::from_secs((r >> 8) % (90 * 86_400)));
            }
            if r % 50 == 0 && i > 0 {
                image.subject = Some(format!("sha256:{:064x}", i - 1));
            }
            image
        })
        .collect();
    LifecycleInventory { images }
}

const POLICY: &str = r#"{"rules": [
 {"rulePriority": 1, "selection": {"tagStatus": "tagged", "tagPatternList": ["prod-*"], "countType": "imageCountMoreThan", "countNumber": 500}, "action": {"type": "expire"}},
 {"rulePriority": 2, "selection": {"tagStatus": "tagged", "tagPatternList": ["release-*"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 180}, "action": {"type": "transition", "targetStorageClass": "archive"}},
 {"rulePriority": 3, "selection": {"tagStatus": "tagged", "tagPrefixList": ["dev-"], "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 30}, "action": {"type": "transition", "targetStorageClass": "archive"}},
 {"rulePriority": 4, "selection": {"tagStatus": "tagged", "tagPatternList": ["v*.*.*"], "countType": "imageCountMoreThan", "countNumber": 1000}, "action": {"type": "expire"}},
 {"rulePriority": 5, "selection": {"tagStatus": "tagged", "tagPatternList": ["*stable*"], "countType": "imageCountMoreThan", "countNumber": 50}, "action": {"type": "expire"}},
 {"rulePriority": 6, "selection": {"tagStatus": "tagged", "tagPatternList": ["feature-1*"], "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14}, "action": {"type": "expire"}},
 {"rulePriority": 7, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7}, "action": {"type": "expire"}},
 {"rulePriority": 8, "selection": {"tagStatus": "tagged", "tagPatternList": ["*-1*"], "countType": "imageCountMoreThan", "countNumber": 100}, "action": {"type": "expire"}},
 {"rulePriority": 9, "selection": {"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 365}, "action": {"type": "expire"}},
 {"rulePriority": 10, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 20000}, "action": {"type": "expire"}}
]}"#;

fn bench(c: &mut Criterion) {
    let policy = LifecyclePolicy::parse(POLICY).unwrap();
    let inventory = inventory(100_000);
    let now = UNIX_EPOCH + 20_000 * DAY;
    let mut group = c.benchmark_group("lifecycle_100k_images");
    group.sample_size(10);
    group.bench_function("baseline_sort_push_times", |b| {
        b.iter(|| {
            let mut times: Vec<SystemTime> = inventory.images.iter().map(|i| i.pushed_at).collect();
            times.sort_unstable();
            black_box(times)
        })
    });
    group.bench_function("plan_10_rules", |b| {
        b.iter(|| black_box(plan(&policy, &inventory, now)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
