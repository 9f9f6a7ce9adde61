//! HL7 v2 content filed as FHIR: ORU^R01 results as Observations, ORM^O01/OMI^O23 orders as
//! ServiceRequests, ADT as Patients, all found by search; corrections update in place; content
//! errors answered AE naming segment and field, with nothing filed.

use serde_json::Value;

use crate::helpers::{TestApp, hl7_samples_dir, spawn_app};
use crate::hl7::{connect, exchange, segment};

const ORU: &str = "MSH|^~\\&|LAB|HOSP|PROGNOSTICS|ONC|20240105083000||ORU^R01^ORU_R01|R1|P|2.5.1\r\
PID|1||MRN123^^^HOSP^MR~999-11-2222^^^SSA^SS||DOE^JANE^Q^^DR^^L||19650412|F|||1 Main St^^Springfield^IL^62701^USA^H||^PRN^PH^^1^217^5550100\r\
OBR|1|PL77^RIS|LAB555^LIS|24331-1^Lipid panel^LN|||20240105070000-0500|||||||||||||||20240105080000-0500|||F\r\
OBX|1|NM|2093-3^Cholesterol^LN||196|mg/dL^^UCUM|<200|N|||F\r\
NTE|1||Fasting sample\r\
OBX|2|SN|2857-1^PSA^LN||<^0.1|ng/mL^^UCUM|0-4|L|||F|||20240105071500-0500\r\
OBX|3|CWE|48676-1^HER2^LN||260385009^Negative^SCT||||||P\r\
OBX|4|ST|8251-1^Comment^LN||Hemolysed \\T\\ repeated||||||F\r";

async fn post_hl7(app: &TestApp, message: &str) -> String {
    let response = app
        .client
        .post(format!("{}/hl7/v2", app.address))
        .header("Content-Type", "x-application/hl7-v2+er7")
        .body(message.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

async fn only_patient(app: &TestApp) -> Value {
    let patients = entries(&app.search("Patient").await);
    assert_eq!(patients.len(), 1, "{patients:?}");
    patients[0].clone()
}

#[tokio::test]
async fn oru_results_become_observations_of_the_patient_pid_names() {
    let app = spawn_app().await;
    let mut stream = connect(&app).await;
    let ack = exchange(&mut stream, ORU.as_bytes()).await;
    assert_eq!(&segment(&ack, "MSA")[1..3], ["AA", "R1"], "{ack}");

    let patient = only_patient(&app).await;
    assert_eq!(patient["identifier"][0]["value"], "MRN123");
    assert_eq!(patient["identifier"][0]["type"]["coding"][0]["code"], "MR");
    assert_eq!(patient["identifier"][0]["assigner"]["display"], "HOSP");
    assert_eq!(patient["name"][0]["family"], "DOE");
    assert_eq!(
        patient["name"][0]["given"],
        serde_json::json!(["JANE", "Q"])
    );
    assert_eq!(patient["name"][0]["use"], "official");
    assert_eq!(patient["birthDate"], "1965-04-12");
    assert_eq!(patient["gender"], "female");
    assert_eq!(patient["address"][0]["city"], "Springfield");
    assert_eq!(patient["telecom"][0]["value"], "+1 (217) 5550100");
    let id = patient["id"].as_str().unwrap();

    let bundle = app
        .search(&format!("Observation?patient=Patient/{id}&_count=50"))
        .await;
    let mut observations = entries(&bundle);
    observations.sort_by_key(|o| o["code"]["coding"][0]["code"].as_str().unwrap().to_owned());
    assert_eq!(observations.len(), 4);
    let cholesterol = &observations[0];
    assert_eq!(
        cholesterol["code"]["coding"][0]["system"],
        "http://loinc.org"
    );
    assert_eq!(cholesterol["code"]["coding"][0]["code"], "2093-3");
    assert_eq!(cholesterol["status"], "final");
    assert_eq!(
        cholesterol["category"][0]["coding"][0]["code"],
        "laboratory"
    );
    assert_eq!(cholesterol["valueQuantity"]["value"], 196.0);
    assert_eq!(cholesterol["valueQuantity"]["unit"], "mg/dL");
    assert_eq!(
        cholesterol["valueQuantity"]["system"],
        "http://unitsofmeasure.org"
    );
    assert_eq!(cholesterol["referenceRange"][0]["high"]["value"], 200.0);
    assert_eq!(cholesterol["interpretation"][0]["coding"][0]["code"], "N");
    assert_eq!(
        cholesterol["effectiveDateTime"],
        "2024-01-05T07:00:00-05:00"
    );
    assert_eq!(cholesterol["issued"], "2024-01-05T08:00:00-05:00");
    assert_eq!(cholesterol["note"][0]["text"], "Fasting sample");
    assert_eq!(cholesterol["subject"]["reference"], format!("Patient/{id}"));
    assert_eq!(cholesterol["identifier"][0]["value"], "LAB555/2093-3");
    let psa = &observations[1];
    assert_eq!(psa["valueQuantity"]["comparator"], "<");
    assert_eq!(psa["effectiveDateTime"], "2024-01-05T07:15:00-05:00");
    assert_eq!(psa["referenceRange"][0]["low"]["value"], 0.0);
    let her2 = &observations[2];
    assert_eq!(her2["status"], "preliminary");
    assert_eq!(
        her2["valueCodeableConcept"]["coding"][0]["system"],
        "http://snomed.info/sct"
    );
    let comment = &observations[3];
    assert_eq!(comment["valueString"], "Hemolysed & repeated");

    // Searchable by code too.
    let by_code = app.search("Observation?code=http://loinc.org|2093-3").await;
    assert_eq!(by_code["total"], 1);
    assert_eq!(
        app.query_count("SELECT COUNT(*) FROM hl7_messages WHERE status = 'processed'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_corrected_result_updates_the_observation_it_corrects() {
    let app = spawn_app().await;
    post_hl7(&app, ORU).await;
    // The lab corrects the cholesterol in a new message: same order, same code, status C.
    let correction = ORU.replace("|R1|", "|R2|").replace(
        "||196|mg/dL^^UCUM|<200|N|||F",
        "||216|mg/dL^^UCUM|<200|H|||C",
    );
    let ack = post_hl7(&app, &correction).await;
    assert_eq!(segment(&ack, "MSA")[1], "AA", "{ack}");
    let bundle = app.search("Observation?code=http://loinc.org|2093-3").await;
    assert_eq!(bundle["total"], 1, "corrected, not duplicated");
    let observation = &entries(&bundle)[0];
    assert_eq!(observation["status"], "corrected");
    assert_eq!(observation["valueQuantity"]["value"], 216.0);
    assert_eq!(observation["meta"]["versionId"], "2");
    assert_eq!(entries(&app.search("Patient").await).len(), 1);
    // Re-sending the first message (a lost ACK) files nothing again.
    let ack = post_hl7(&app, ORU).await;
    assert_eq!(segment(&ack, "MSA")[1], "AA");
    let again = app.search("Observation?code=http://loinc.org|2093-3").await;
    assert_eq!(entries(&again)[0]["meta"]["versionId"], "2");
}

#[tokio::test]
async fn adt_creates_and_updates_the_patient_that_results_then_attach_to() {
    let app = spawn_app().await;
    let a04 = "MSH|^~\\&|ADT|HOSP|PROGNOSTICS|ONC|20240101090000||ADT^A04^ADT_A01|A1|P|2.5\r\
EVN|A04|20240101090000\r\
PID|1||MRN123^^^HOSP^MR||DOE^JANE||19650412|F\r";
    let ack = post_hl7(&app, a04).await;
    assert_eq!(segment(&ack, "MSA")[1], "AA", "{ack}");
    let first = only_patient(&app).await;
    assert_eq!(first["name"][0]["family"], "DOE");

    // A08: a new name and a death; the identifier list grows, nothing else is lost.
    let a08 = "MSH|^~\\&|ADT|HOSP|PROGNOSTICS|ONC|20240301090000||ADT^A08^ADT_A01|A2|P|2.5\r\
PID|1||MRN123^^^HOSP^MR~55501^^^ONCO^PI||SMITH^JANE||19650412|F|||||||||||||||||||||20240229|Y\r";
    let ack = post_hl7(&app, a08).await;
    assert_eq!(segment(&ack, "MSA")[1], "AA", "{ack}");
    let updated = only_patient(&app).await;
    assert_eq!(updated["id"], first["id"]);
    assert_eq!(updated["name"][0]["family"], "SMITH");
    assert_eq!(updated["deceasedDateTime"], "2024-02-29");
    assert_eq!(updated["identifier"].as_array().unwrap().len(), 2);
    assert_eq!(updated["meta"]["versionId"], "2");

    // Results for MRN123 attach to that Patient and do not change it.
    post_hl7(&app, ORU).await;
    let after = only_patient(&app).await;
    assert_eq!(after["meta"]["versionId"], "2");
    let id = after["id"].as_str().unwrap();
    let bundle = app
        .search(&format!("Observation?patient=Patient/{id}"))
        .await;
    assert_eq!(bundle["total"], 4);
}

#[tokio::test]
async fn imaging_orders_become_service_requests_and_cancels_revoke_them() {
    let app = spawn_app().await;
    let omi = "MSH|^~\\&|RIS|HOSP|PROGNOSTICS|ONC|20240105083000||OMI^O23^OMI_O23|O1|P|2.5.1\r\
PID|1||MRN123^^^HOSP^MR||DOE^JANE||19650412|F\r\
ORC|NW|PL900^RIS|||||||20240105082500|||1234^WELBY^MARCUS\r\
TQ1|||||||20240106090000||S\r\
OBR|1|PL900^RIS||24627-2^CT Chest^LN|||||||||Known lung nodule||||||||||||||||||R91.1^Solitary pulmonary nodule^I10\r\
NTE|1||Compare with prior\r\
IPC|ACC42^RIS|RP1|1.2.840.99.1.42|SPS1|CT^Computed Tomography^DCM\r";
    let ack = post_hl7(&app, omi).await;
    assert_eq!(segment(&ack, "MSA")[1], "AA", "{ack}");
    let bundle = app.search("ServiceRequest?identifier=PL900").await;
    assert_eq!(bundle["total"], 1);
    let request = &entries(&bundle)[0];
    assert_eq!(request["status"], "active");
    assert_eq!(request["intent"], "order");
    assert_eq!(request["priority"], "stat");
    assert_eq!(request["category"][0]["coding"][0]["code"], "363679005");
    assert_eq!(request["code"]["coding"][0]["code"], "24627-2");
    assert_eq!(request["occurrenceDateTime"].as_str().unwrap().len(), 25);
    assert_eq!(request["requester"]["display"], "MARCUS WELBY");
    assert_eq!(request["reasonCode"][0]["coding"][0]["code"], "R91.1");
    let types: Vec<&str> = request["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"]["coding"][0]["code"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["PLAC", "ACSN"]);
    let notes: Vec<&str> = request["note"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap())
        .collect();
    assert_eq!(notes, ["Compare with prior", "Known lung nodule"]);

    // ORM^O01 cancel of the same order: the same ServiceRequest, revoked.
    let cancel = "MSH|^~\\&|RIS|HOSP|PROGNOSTICS|ONC|20240105093000||ORM^O01|O2|P|2.3\r\
PID|1||MRN123^^^HOSP^MR\r\
ORC|CA|PL900^RIS\r\
OBR|1|PL900^RIS||24627-2^CT Chest^LN\r";
    let ack = post_hl7(&app, cancel).await;
    assert_eq!(segment(&ack, "MSA")[1], "AA", "{ack}");
    let bundle = app.search("ServiceRequest?identifier=PL900").await;
    assert_eq!(bundle["total"], 1);
    assert_eq!(entries(&bundle)[0]["status"], "revoked");

    // An order first known by its filler number alone, later sent with a placer number too:
    // still one order.
    let by_filler = "MSH|^~\\&|RIS|HOSP|PROGNOSTICS|ONC|20240105100000||ORM^O01|O3|P|2.3\r\
PID|1||MRN123^^^HOSP^MR\r\
ORC|NW||FL7^PACS||IP\r\
OBR|1||FL7^PACS|24627-2^CT Chest^LN\r";
    post_hl7(&app, by_filler).await;
    let with_placer = "MSH|^~\\&|RIS|HOSP|PROGNOSTICS|ONC|20240105110000||ORM^O01|O4|P|2.3\r\
PID|1||MRN123^^^HOSP^MR\r\
ORC|SC|PL7^RIS|FL7^PACS||HD\r";
    let ack = post_hl7(&app, with_placer).await;
    assert_eq!(segment(&ack, "MSA")[1], "AA", "{ack}");
    let fl7 = app.search("ServiceRequest?identifier=FL7").await;
    assert_eq!(fl7["total"], 1, "one order, however it is named");
    assert_eq!(entries(&fl7)[0]["status"], "on-hold");
    assert_eq!(app.search("ServiceRequest").await["total"], 2);

    // The report of that order (its filler number in OBR-3): the result is based on it.
    let report = "MSH|^~\\&|RIS|HOSP|PROGNOSTICS|ONC|20240106100000||ORU^R01|R9|P|2.5.1\r\
PID|1||MRN123^^^HOSP^MR\r\
OBR|1||FL7^PACS|24627-2^CT Chest^LN|||20240106090000\r\
OBX|1|TX|18782-3^Study observation^LN||No acute findings||||||F\r";
    let ack = post_hl7(&app, report).await;
    assert_eq!(segment(&ack, "MSA")[1], "AA", "{ack}");
    let order_id = entries(&fl7)[0]["id"].as_str().unwrap().to_owned();
    let results = entries(&app.search("Observation?code=18782-3").await);
    assert_eq!(results.len(), 1);
    assert_eq!(
        results[0]["basedOn"][0]["reference"],
        format!("ServiceRequest/{order_id}")
    );
    // A result whose order was never filed has no basedOn.
    let unordered = report
        .replace("|R9|", "|R10|")
        .replace("FL7^PACS", "FL8^PACS");
    post_hl7(&app, &unordered).await;
    let results = entries(&app.search("Observation?code=18782-3").await);
    assert_eq!(results.len(), 2);
    assert_eq!(
        results
            .iter()
            .filter(|r| r.get("basedOn").is_some())
            .count(),
        1
    );
}

#[tokio::test]
async fn content_errors_are_answered_ae_naming_the_field_and_nothing_is_filed() {
    let app = spawn_app().await;
    let cases = [
        // A result time in the future.
        (
            ORU.replace("|||20240105071500-0500", "|||20990105071500-0500"),
            "OBX^2^14",
            "102^",
        ),
        // A number that is not one.
        (ORU.replace("||196|", "||1g6|"), "OBX^1^5", "102^"),
        // No patient identifier.
        (
            ORU.replace("MRN123^^^HOSP^MR~999-11-2222^^^SSA^SS", ""),
            "PID^1^3",
            "101^",
        ),
        // A birth date that is not a date.
        (ORU.replace("|19650412|", "|19651342|"), "PID^1^7", "102^"),
        // A result status outside table 0085.
        (ORU.replace("||||||P\r", "||||||Z\r"), "OBX^3^11", "103^"),
    ];
    for (n, (message, location, code)) in cases.iter().enumerate() {
        let message = message.replace("|R1|", &format!("|BAD{n}|"));
        let ack = post_hl7(&app, &message).await;
        assert_eq!(segment(&ack, "MSA")[1], "AE", "{ack}");
        let err = segment(&ack, "ERR");
        assert_eq!(err[2], *location, "{ack}");
        assert!(err[3].starts_with(code), "{ack}");
        assert_eq!(err[4], "E");
    }
    assert_eq!(app.search("Observation").await["total"], 0);
    assert_eq!(app.search("Patient").await["total"], 0);
    // Stored nonetheless, as failed, with the reason.
    assert_eq!(
        app.query_count(
            "SELECT COUNT(*) FROM hl7_messages WHERE status = 'failed' AND error IS NOT NULL"
        )
        .await,
        cases.len() as i64
    );
}

#[tokio::test]
async fn questionable_content_is_filed_with_warnings_in_the_ack() {
    let app = spawn_app().await;
    // A number without units, a flag outside table 0078, a malformed LOINC code, sex "X".
    let message = ORU
        .replace("||196|mg/dL^^UCUM|<200|N|", "||196||<200|Q|")
        .replace("|2857-1^PSA^LN|", "|2857-9^PSA^LN|")
        .replace("|19650412|F|", "|19650412|X|");
    let ack = post_hl7(&app, &message).await;
    assert_eq!(segment(&ack, "MSA")[1], "AA", "{ack}");
    let warnings: Vec<Vec<&str>> = ack
        .split('\r')
        .filter(|s| s.starts_with("ERR"))
        .map(|s| s.split('|').collect())
        .collect();
    let mut locations: Vec<&str> = warnings.iter().map(|w| w[2]).collect();
    locations.sort_unstable();
    assert_eq!(
        locations,
        ["OBX^1^6", "OBX^1^8", "OBX^2^3", "PID^1^8"],
        "{ack}"
    );
    assert!(warnings.iter().all(|w| w[4] == "W"));
    assert_eq!(app.search("Observation").await["total"], 4);
    assert!(only_patient(&app).await.get("gender").is_none());
}

#[tokio::test]
async fn published_sample_messages_are_filed_or_answered_with_their_fault() {
    let Some(dir) = hl7_samples_dir() else {
        return;
    };
    let app = spawn_app().await;
    let send = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    for name in ["adt.hl7", "orm.hl7", "oru.hl7"] {
        let ack = post_hl7(&app, &send(name)).await;
        assert_eq!(segment(&ack, "MSA")[1], "AA", "{name}: {ack}");
    }
    // The VAERS report's OBX 16 sends "01I" as a number (NM).
    let ack = post_hl7(&app, &send("oru-imm.hl7")).await;
    assert_eq!(segment(&ack, "MSA")[1], "AE", "{ack}");
    assert_eq!(segment(&ack, "ERR")[2], "OBX^16^5");
    // adt (MRN 0493575), orm (12001) and oru (94000000000) name three patients.
    assert_eq!(app.search("Patient").await["total"], 3);
    assert_eq!(app.search("ServiceRequest").await["total"], 1);
    let lipids = app.search("Observation?_count=20").await;
    assert_eq!(lipids["total"], 5);
    let ldl = entries(&lipids)
        .into_iter()
        .find(|o| o["code"]["coding"][0]["code"] == "JLDL")
        .unwrap();
    assert_eq!(ldl["valueQuantity"]["value"], 134.0);
    assert_eq!(ldl["valueQuantity"]["unit"], "mg/dL");
    assert_eq!(ldl["interpretation"][0]["coding"][0]["code"], "H");
    assert_eq!(ldl["referenceRange"][0]["high"]["value"], 100.0);
}
