//! The original's two Locust scenarios as goose scenarios. Every response
//! is checked against the contract (`crate::contract`): a wrong status or a
//! body the original's clients could not read marks the request failed.

use std::time::Duration;

use bytes::Bytes;
use domain::{OrderId, OrderStatus};
use goose::goose::GooseResponse;
use goose::metrics::GooseRequestMetric;
use goose::prelude::*;
use serde::Serialize;

use crate::contract::{self, ContractError, NewOrderBody};

/// Which of the original's load scenarios to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioKind {
    /// A reader user (list 9 : detail 1, 0.1 to 0.5 s apart) and a writer
    /// user (create, 1 to 3 s apart): about 90% reads.
    ReadersWriters,
    /// One user type: list 5, create 2, own detail 3, own status change 1,
    /// own delete 1, 1 to 3 s apart.
    Mixed,
}

/// Request names, as the summary and goose's report show them.
pub const LIST: &str = "/orders";
pub const DETAIL: &str = "/orders/{id}";
pub const STATUS: &str = "/orders/{id}/status";

/// Readers are paced 0.1 to 0.5 s (one request per ~0.3 s), writers 1 to
/// 3 s (one per ~2 s): a reader makes about 6.7 times as many requests as a
/// writer. Three readers to every two writers give 3 x 6.7 = 20 reads to 2
/// writes, the original README's "90% reads, 10% writes".
pub const READER_WEIGHT: usize = 3;
pub const WRITER_WEIGHT: usize = 2;
const READER_WAIT: (Duration, Duration) = (Duration::from_millis(100), Duration::from_millis(500));
const WRITER_WAIT: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3));
const MIXED_WAIT: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3));

/// A user's tasks and their weights, as the Locust files declared them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    List,
    OpenListed,
    Create,
    OpenOwn,
    CompleteOwn,
    DeleteOwn,
}

const READER_TASKS: &[(Task, u32)] = &[(Task::List, 9), (Task::OpenListed, 1)];
const WRITER_TASKS: &[(Task, u32)] = &[(Task::Create, 1)];
const MIXED_TASKS: &[(Task, u32)] = &[
    (Task::List, 5),
    (Task::Create, 2),
    (Task::OpenOwn, 3),
    (Task::CompleteOwn, 1),
    (Task::DeleteOwn, 1),
];

/// Each user picks its next task at random by weight, as Locust does.
/// Goose's own transaction weights would not do: its schedulers give every
/// user of a scenario the same (at best shuffled once) sequence, so users
/// run in step and a short run sees a skewed mix.
pub fn register(attack: GooseAttack, kind: ScenarioKind) -> Result<GooseAttack, GooseError> {
    Ok(match kind {
        ScenarioKind::ReadersWriters => attack
            .register_scenario(
                scenario!("Reader")
                    .set_weight(READER_WEIGHT)?
                    .set_wait_time(READER_WAIT.0, READER_WAIT.1)?
                    .register_transaction(transaction!(reader_task)),
            )
            .register_scenario(
                scenario!("Writer")
                    .set_weight(WRITER_WEIGHT)?
                    .set_wait_time(WRITER_WAIT.0, WRITER_WAIT.1)?
                    .register_transaction(transaction!(writer_task)),
            ),
        ScenarioKind::Mixed => attack.register_scenario(
            scenario!("Mixed")
                .set_wait_time(MIXED_WAIT.0, MIXED_WAIT.1)?
                .register_transaction(transaction!(mixed_task)),
        ),
    })
}

fn pick_task(tasks: &[(Task, u32)]) -> Task {
    let total: u32 = tasks.iter().map(|(_, weight)| weight).sum();
    let mut roll = rand::random_range(0..total);
    for &(task, weight) in tasks {
        if roll < weight {
            return task;
        }
        roll -= weight;
    }
    unreachable!("the roll is below the total weight")
}

async fn run_task(user: &mut GooseUser, task: Task) -> TransactionResult {
    match task {
        Task::List => list_orders(user).await,
        Task::OpenListed => open_listed_order(user).await,
        Task::Create => create_order(user).await,
        Task::OpenOwn => open_own_order(user).await,
        Task::CompleteOwn => complete_own_order(user).await,
        Task::DeleteOwn => delete_own_order(user).await,
    }
}

async fn reader_task(user: &mut GooseUser) -> TransactionResult {
    run_task(user, pick_task(READER_TASKS)).await
}

async fn writer_task(user: &mut GooseUser) -> TransactionResult {
    run_task(user, pick_task(WRITER_TASKS)).await
}

async fn mixed_task(user: &mut GooseUser) -> TransactionResult {
    run_task(user, pick_task(MIXED_TASKS)).await
}

/// What one user remembers between tasks, as the Locust users did.
#[derive(Debug, Clone, Default)]
struct Session {
    /// The ids of the last list this user read.
    listed: Vec<OrderId>,
    /// Orders this user created and has not deleted, with their status.
    own: Vec<(OrderId, OrderStatus)>,
}

fn session(user: &mut GooseUser) -> &mut Session {
    if user.get_session_data::<Session>().is_none() {
        user.set_session_data(Session::default());
    }
    user.get_session_data_unchecked_mut::<Session>()
}

struct Reply {
    location: Option<String>,
    body: Bytes,
    request: GooseRequestMetric,
}

/// Marks the request failed with `tag` (goose's error summary groups by it)
/// and gives the error the transaction returns.
fn fail(
    user: &mut GooseUser,
    request: &mut GooseRequestMetric,
    tag: &str,
    body: &[u8],
) -> Box<TransactionError> {
    let shown = String::from_utf8_lossy(&body[..body.len().min(300)]);
    match user.set_failure(tag, request, None, Some(&shown)) {
        Err(error) => error,
        Ok(()) => Box::new(TransactionError::Custom(tag.to_owned())),
    }
}

/// Sends one request; anything but `expected` is a failed request.
async fn send(
    user: &mut GooseUser,
    method: GooseMethod,
    path: &str,
    name: &str,
    json: Option<Vec<u8>>,
    expected: u16,
) -> Result<Reply, Box<TransactionError>> {
    let mut builder = user.get_request_builder(&method, path)?;
    if let Some(json) = json {
        builder = builder
            .header("content-type", "application/json")
            .body(json);
    }
    let request = GooseRequest::builder()
        .method(method)
        .path(path)
        .name(name)
        .expect_status_code(expected)
        .set_request_builder(builder)
        .build();
    let GooseResponse {
        mut request,
        response,
    } = user.request(request).await?;
    let response = match response {
        Ok(response) => response,
        // Goose has recorded the failure and its cause already.
        Err(_) => {
            return Err(Box::new(TransactionError::RequestFailed {
                raw_request: Box::new(request),
            }));
        }
    };
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(error) => {
            return Err(fail(
                user,
                &mut request,
                &format!("{name}: body: {error}"),
                b"",
            ));
        }
    };
    if let Err(error) = contract::expect_status(status, expected) {
        return Err(fail(user, &mut request, &format!("{name}: {error}"), &body));
    }
    Ok(Reply {
        location,
        body,
        request,
    })
}

/// Turns a contract check into the request's failure.
fn checked<T>(
    user: &mut GooseUser,
    reply: &mut Reply,
    name: &str,
    result: Result<T, ContractError>,
) -> Result<T, Box<TransactionError>> {
    result.map_err(|error| {
        fail(
            user,
            &mut reply.request,
            &format!("{name}: {error}"),
            &reply.body,
        )
    })
}

fn json(body: &impl Serialize) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(body).expect("request bodies always serialise"))
}

async fn list_orders(user: &mut GooseUser) -> TransactionResult {
    let mut reply = send(user, GooseMethod::Get, "/orders", LIST, None, 200).await?;
    let orders = contract::list(&reply.body);
    let orders = checked(user, &mut reply, LIST, orders)?;
    session(user).listed = orders.into_iter().map(|order| order.id).collect();
    Ok(())
}

fn pick<T: Copy>(items: &[T]) -> Option<T> {
    (!items.is_empty()).then(|| items[rand::random_range(0..items.len())])
}

async fn open(user: &mut GooseUser, id: OrderId) -> TransactionResult {
    let path = format!("/orders/{id}");
    let mut reply = send(user, GooseMethod::Get, &path, DETAIL, None, 200).await?;
    let order = contract::detail(&reply.body, id);
    checked(user, &mut reply, DETAIL, order).map(drop)
}

async fn open_listed_order(user: &mut GooseUser) -> TransactionResult {
    match pick(&session(user).listed) {
        Some(id) => open(user, id).await,
        // Nothing listed yet (a new user, or an empty database): list
        // instead, so the next detail has ids to choose from.
        None => list_orders(user).await,
    }
}

async fn create_order(user: &mut GooseUser) -> TransactionResult {
    let sent = NewOrderBody::random(&mut rand::rng());
    let mut reply = send(
        user,
        GooseMethod::Post,
        "/orders",
        "/orders",
        json(&sent),
        201,
    )
    .await?;
    let location = reply.location.take();
    let order = contract::created(&reply.body, location.as_deref(), &sent);
    let order = checked(user, &mut reply, "/orders", order)?;
    session(user).own.push((order.id, order.status));
    Ok(())
}

async fn open_own_order(user: &mut GooseUser) -> TransactionResult {
    match pick(&session(user).own) {
        Some((id, _)) => open(user, id).await,
        // Like the Locust user, a user with no order of its own skips.
        None => Ok(()),
    }
}

async fn complete_own_order(user: &mut GooseUser) -> TransactionResult {
    let received: Vec<OrderId> = session(user)
        .own
        .iter()
        .filter(|(_, status)| *status == OrderStatus::Received)
        .map(|(id, _)| *id)
        .collect();
    let Some(id) = pick(&received) else {
        return Ok(());
    };
    let path = format!("/orders/{id}/status");
    let body = serde_json::json!({ "status": OrderStatus::Completed.as_str() });
    let mut reply = send(user, GooseMethod::Patch, &path, STATUS, json(&body), 200).await?;
    let order = contract::status_changed(&reply.body, id, OrderStatus::Completed);
    let order = checked(user, &mut reply, STATUS, order)?;
    if let Some(own) = session(user).own.iter_mut().find(|(own, _)| *own == id) {
        own.1 = order.status;
    }
    Ok(())
}

async fn delete_own_order(user: &mut GooseUser) -> TransactionResult {
    let Some((id, _)) = pick(&session(user).own) else {
        return Ok(());
    };
    let path = format!("/orders/{id}");
    let mut reply = send(user, GooseMethod::Delete, &path, DETAIL, None, 200).await?;
    let deleted = contract::deleted(&reply.body, id);
    checked(user, &mut reply, DETAIL, deleted)?;
    session(user).own.retain(|(own, _)| *own != id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_picked_by_their_weights() {
        let picks = 24_000;
        let mut counts = [0u32; 6];
        for _ in 0..picks {
            counts[pick_task(MIXED_TASKS) as usize] += 1;
        }
        let total_weight: u32 = MIXED_TASKS.iter().map(|(_, weight)| weight).sum();
        for &(task, weight) in MIXED_TASKS {
            let expected = f64::from(weight) / f64::from(total_weight);
            let seen = f64::from(counts[task as usize]) / f64::from(picks);
            assert!(
                (seen - expected).abs() < 0.02,
                "{task:?}: {seen:.3} vs {expected:.3}"
            );
        }
        assert_eq!(counts[Task::OpenListed as usize], 0);
        assert!((0..100).all(|_| pick_task(WRITER_TASKS) == Task::Create));
    }
}
