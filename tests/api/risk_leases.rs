//! An asynchronous assessment whose lease another replica has taken stops where it is: the run
//! that holds the lease is the one that files the report, and no job is run twice at once.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{TestApp, spawn_app_in, spawn_app_with};
use crate::risk_assessment::assess_async;

const PATIENT: &str = "cancer-patient-jenny-m";

async fn reports(app: &TestApp) -> u64 {
    let found: Value = app
        .search(&format!("DiagnosticReport?subject=Patient/{PATIENT}"))
        .await;
    found["total"].as_u64().unwrap()
}

#[tokio::test]
async fn a_job_whose_lease_was_taken_stops_and_files_nothing_twice() {
    // A slow EHR: the assessment is still pulling the record when its lease is taken.
    let Some(server) = crate::ehr::slow_ehr_with_a_diagnosis().await else {
        return;
    };
    let ehr = server.base_url.clone();
    let app = spawn_app_with(|s| {
        s.ehr.base_url = Some(ehr);
        s.ehr.timeout_secs = 10;
        s.risk.job_lease_secs = 1;
    })
    .await;
    let status_url = assess_async(&app, PATIENT).await;
    let job = status_url.rsplit('/').next().unwrap().to_owned();

    // Another replica takes the job, as one does when a renewal stalled past the lease.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let taken = app
        .execute(&format!(
            "UPDATE risk_jobs SET lease_holder = 'another-replica', \
             lease_until_ms = 9999999999999 WHERE id = '{job}'"
        ))
        .await;
    assert_eq!(taken, 1);

    if app.is_postgres() {
        // The other replica holds it: this one stops and files nothing.
        tokio::time::sleep(Duration::from_secs(12)).await;
        assert_eq!(reports(&app).await, 0);
        assert_eq!(app.get_url(&status_url).await.status(), 202);
    } else {
        // The embedded database has one process: whoever else is named holds nothing, so this
        // process takes the job back and runs it to its end, filing one report. (A second run
        // would refile the same report: the PostgreSQL case above is the one that tells a run
        // that went on after losing its lease.)
        let mut filed = 0;
        for _ in 0..200 {
            filed = reports(&app).await;
            if filed > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(filed, 1);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(reports(&app).await, 1);
    }
}

/// A stop lets an asynchronous assessment running in the process finish before its lease is
/// given up: after a restart with the EHR gone, its Bundle is there. (Given up while the run
/// went on, the job was taken over by the restarted service, which could not reach the EHR.)
#[tokio::test]
async fn a_stop_lets_a_running_assessment_finish_before_giving_up_its_lease() {
    let Some(server) = crate::ehr::slow_ehr_with_a_diagnosis().await else {
        return;
    };
    let ehr = server.base_url.clone();
    let configure = move |s: &mut prognostics::config::Settings| {
        s.ehr.base_url = Some(ehr.clone());
        s.ehr.timeout_secs = 10;
    };
    let app = spawn_app_with(configure.clone()).await;
    let status_url = assess_async(&app, PATIENT).await;
    // The assessment is pulling the record when the stop comes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old_address = app.address.clone();
    let (dir, database) = app.stop().await;
    drop(server);

    let app = spawn_app_in(dir, database, configure).await;
    let response = app
        .get_url(&status_url.replace(&old_address, &app.address))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(reports(&app).await, 1);
}
