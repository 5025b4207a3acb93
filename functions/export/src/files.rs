//! Where export jobs put their files: an S3 bucket of the stack in AWS, a
//! folder under the data directory in the local server. Both speak the same
//! small language, the one of an S3 multipart upload, so the job code is one:
//!
//! - a file is written as numbered parts ([`Files::start`], [`Files::put_part`],
//!   [`Files::complete`]); every part but the last holds at least
//!   [`MIN_PART_BYTES`] (S3's rule), and a part written again under the same
//!   number replaces the earlier one, so a job that repeats a step after a
//!   crash leaves no trace of the first attempt. The caller keeps each
//!   part's tag (S3's ETag) and hands them all to `complete`, so nothing
//!   needs to list the parts;
//! - small whole objects ([`Files::put`], [`Files::get`], [`Files::delete`]) carry
//!   what one invocation of a job hands to the next;
//! - [`Files::download`] says how a client fetches a finished file: a
//!   presigned S3 URL, valid for [`DOWNLOAD_URL_TTL`], or the local server's own
//!   route, which asks for the account's token like every other route.
//!
//! The S3 backend is `aws-sdk-s3` on the same HTTP stack and configuration
//! chain as the DynamoDB client (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`
//! point it at moto or LocalStack; path-style addressing is used then).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use shared::ApiError;

/// The smallest part S3 accepts, but for the last one.
pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;
/// How long a download URL of a finished export works.
pub const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(3600);
/// The variable naming the bucket; without it the local server uses a folder.
pub const BUCKET_ENV: &str = "EXPORT_BUCKET";
/// The media type of a finished export file.
pub const FILE_CONTENT_TYPE: &str = "application/gzip";
/// How a finished export asks to be saved.
pub const FILE_DISPOSITION: &str = "attachment; filename=\"users.csv.gz\"";

/// The storage of export files.
#[derive(Clone, Debug)]
pub enum Files {
    S3(S3Files),
    Folder(FolderFiles),
}

/// How a client gets a finished file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Download {
    /// A URL that works without any other credential until it expires.
    Presigned { url: String, expires_in: Duration },
    /// The local server's route for the file (the account's token needed).
    Served,
}

impl Files {
    /// S3 when [`BUCKET_ENV`] names a bucket, else the folder `fallback`.
    pub async fn from_env(fallback: &Path) -> Self {
        match std::env::var(BUCKET_ENV) {
            Ok(bucket) if !bucket.trim().is_empty() => {
                Self::S3(S3Files::from_env(bucket.trim()).await)
            }
            _ => Self::Folder(FolderFiles::new(fallback)),
        }
    }

    /// Starts a multipart upload of `key`; its id.
    pub async fn start(&self, key: &str) -> Result<String, ApiError> {
        match self {
            Self::S3(s3) => s3.start(key).await,
            Self::Folder(folder) => folder.start(key),
        }
    }

    /// Writes part `number` (1-based) of an upload; its tag.
    pub async fn put_part(
        &self,
        key: &str,
        upload: &str,
        number: u32,
        bytes: Bytes,
    ) -> Result<String, ApiError> {
        match self {
            Self::S3(s3) => s3.put_part(key, upload, number, bytes).await,
            Self::Folder(folder) => folder.put_part(upload, number, &bytes),
        }
    }

    /// Makes the file of the upload's parts `1..=tags.len()`, given their
    /// tags in order.
    pub async fn complete(&self, key: &str, upload: &str, tags: &[String]) -> Result<(), ApiError> {
        match self {
            Self::S3(s3) => s3.complete(key, upload, tags).await,
            Self::Folder(folder) => folder.complete(key, upload, tags.len() as u32),
        }
    }

    /// Writes a whole small object.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), ApiError> {
        match self {
            Self::S3(s3) => s3.put(key, bytes).await,
            Self::Folder(folder) => folder.put(key, &bytes),
        }
    }

    /// Reads a whole small object; `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, ApiError> {
        match self {
            Self::S3(s3) => s3.get(key).await,
            Self::Folder(folder) => folder.get(key),
        }
    }

    /// Removes an object; nothing to remove is fine.
    pub async fn delete(&self, key: &str) -> Result<(), ApiError> {
        match self {
            Self::S3(s3) => s3.delete(key).await,
            Self::Folder(folder) => folder.delete(key),
        }
    }

    /// How the client downloads the finished file `key`.
    pub async fn download(&self, key: &str) -> Result<Download, ApiError> {
        match self {
            Self::S3(s3) => s3.presign(key).await,
            Self::Folder(_) => Ok(Download::Served),
        }
    }

    /// The folder's path of a finished file, when files are in a folder.
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        match self {
            Self::S3(_) => None,
            Self::Folder(folder) => Some(folder.path_of(key)),
        }
    }

    /// Whether parts may be smaller than S3's minimum (a folder has none).
    pub fn min_part_bytes(&self) -> usize {
        match self {
            Self::S3(_) => MIN_PART_BYTES,
            Self::Folder(_) => 1,
        }
    }
}

fn s3_error<E, R>(operation: &str, error: SdkError<E, R>) -> ApiError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let detail = format!("{operation}: {}", DisplayErrorContext(&error));
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            ApiError::Unavailable { detail }
        }
        _ => ApiError::Internal {
            detail,
            source: Some(Box::new(error)),
        },
    }
}

/// Export files in an S3 bucket.
#[derive(Clone, Debug)]
pub struct S3Files {
    client: Client,
    bucket: String,
}

impl S3Files {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// A client on the standard configuration chain. With an endpoint
    /// override (moto, LocalStack) it addresses the bucket by path, as those
    /// expect; against AWS by virtual host.
    pub async fn from_env(bucket: &str) -> Self {
        let config = shared::aws::sdk_config(None, None).await;
        Self::new(client_for(&config, None), bucket)
    }
}

impl S3Files {
    /// The bucket on a local S3-compatible server at `endpoint` (moto):
    /// fixed region and dummy credentials, path-style addressing, as
    /// `shared::engine::local_client` does for DynamoDB.
    pub fn local(endpoint: &str, bucket: impl Into<String>) -> Self {
        let config = checksums_when_required(aws_sdk_s3::Config::builder())
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "local", "local", None, None, "local",
            ))
            .endpoint_url(endpoint)
            .http_client(shared::aws::https_client(Some(endpoint)))
            .force_path_style(true)
            .build();
        Self::new(Client::from_conf(config), bucket)
    }

    /// Creates the bucket (a local server's; in AWS the stack makes it).
    pub async fn create_bucket(&self) -> Result<(), ApiError> {
        self.client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| s3_error("CreateBucket", e))?;
        Ok(())
    }
}

/// An S3 client for `config`, at `endpoint` when given. Checksums only where
/// S3 requires them: moto and older S3-compatible stores refuse the trailing
/// checksums of the SDK's default.
pub fn client_for(config: &aws_config::SdkConfig, endpoint: Option<&str>) -> Client {
    let mut builder = checksums_when_required(aws_sdk_s3::config::Builder::from(config));
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    let overridden = endpoint.is_some()
        || ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .iter()
            .any(|name| std::env::var(name).is_ok_and(|v| !v.is_empty()));
    Client::from_conf(builder.force_path_style(overridden).build())
}

/// Checksums only where S3 requires them (see [`client_for`]).
fn checksums_when_required(builder: aws_sdk_s3::config::Builder) -> aws_sdk_s3::config::Builder {
    builder
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
}

impl S3Files {
    async fn start(&self, key: &str) -> Result<String, ApiError> {
        let output = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(FILE_CONTENT_TYPE)
            .content_disposition(FILE_DISPOSITION)
            .send()
            .await
            .map_err(|e| s3_error("CreateMultipartUpload", e))?;
        output
            .upload_id
            .ok_or_else(|| ApiError::internal("CreateMultipartUpload gave no upload id"))
    }

    async fn put_part(
        &self,
        key: &str,
        upload: &str,
        number: u32,
        bytes: Bytes,
    ) -> Result<String, ApiError> {
        let output = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .part_number(number as i32)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| s3_error("UploadPart", e))?;
        output
            .e_tag
            .ok_or_else(|| ApiError::internal("UploadPart gave no ETag"))
    }

    async fn complete(&self, key: &str, upload: &str, tags: &[String]) -> Result<(), ApiError> {
        let parts = tags
            .iter()
            .enumerate()
            .map(|(index, tag)| {
                CompletedPart::builder()
                    .part_number(index as i32 + 1)
                    .e_tag(tag)
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_error("CompleteMultipartUpload", e))?;
        Ok(())
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), ApiError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| s3_error("PutObject", e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, ApiError> {
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None);
            }
            Err(error) => return Err(s3_error("GetObject", error)),
        };
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| ApiError::Unavailable {
                detail: format!("GetObject body: {e}"),
            })?;
        Ok(Some(body.into_bytes()))
    }

    async fn delete(&self, key: &str) -> Result<(), ApiError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("DeleteObject", e))?;
        Ok(())
    }

    async fn presign(&self, key: &str) -> Result<Download, ApiError> {
        let config = PresigningConfig::expires_in(DOWNLOAD_URL_TTL)
            .map_err(|e| ApiError::internal_from("presigning config", e))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| s3_error("presign GetObject", e))?;
        Ok(Download::Presigned {
            url: request.uri().to_owned(),
            expires_in: DOWNLOAD_URL_TTL,
        })
    }
}

/// Export files in a folder: a finished file at its key, an upload's parts
/// in `.uploads/{upload}/` until it completes.
#[derive(Clone, Debug)]
pub struct FolderFiles {
    root: PathBuf,
}

fn io_error(what: &str, path: &Path, error: std::io::Error) -> ApiError {
    ApiError::internal(format!("{what} {}: {error}", path.display()))
}

impl FolderFiles {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The path of `key` (keys are made by the job code: ids and fixed names).
    fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn upload_dir(&self, upload: &str) -> PathBuf {
        self.root.join(".uploads").join(upload)
    }

    fn start(&self, _key: &str) -> Result<String, ApiError> {
        let upload = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.upload_dir(&upload);
        std::fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, e))?;
        Ok(upload)
    }

    fn put_part(&self, upload: &str, number: u32, bytes: &[u8]) -> Result<String, ApiError> {
        write_atomically(&self.upload_dir(upload).join(format!("{number:05}")), bytes)?;
        Ok(format!("{number}:{}", bytes.len()))
    }

    fn complete(&self, key: &str, upload: &str, parts: u32) -> Result<(), ApiError> {
        let dir = self.upload_dir(upload);
        let target = self.path_of(key);
        let partial = target.with_extension("partial");
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
        }
        let mut file =
            std::fs::File::create(&partial).map_err(|e| io_error("create", &partial, e))?;
        for number in 1..=parts {
            let part = dir.join(format!("{number:05}"));
            let bytes = std::fs::read(&part).map_err(|e| io_error("read", &part, e))?;
            file.write_all(&bytes)
                .map_err(|e| io_error("write", &partial, e))?;
        }
        file.sync_all().map_err(|e| io_error("sync", &partial, e))?;
        std::fs::rename(&partial, &target).map_err(|e| io_error("rename", &partial, e))?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), ApiError> {
        write_atomically(&self.path_of(key), bytes)
    }

    fn get(&self, key: &str) -> Result<Option<Bytes>, ApiError> {
        let path = self.path_of(key);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io_error("read", &path, error)),
        }
    }

    fn delete(&self, key: &str) -> Result<(), ApiError> {
        let path = self.path_of(key);
        match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                Err(io_error("remove", &path, error))
            }
            _ => Ok(()),
        }
    }
}

/// Writes a file whole or not at all (a temporary file renamed into place).
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ApiError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
    }
    let partial = path.with_extension("partial");
    let mut file = std::fs::File::create(&partial).map_err(|e| io_error("create", &partial, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write", &partial, e))?;
    std::fs::rename(&partial, path).map_err(|e| io_error("rename", &partial, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_folder_upload_is_its_parts_in_order_and_a_repeated_part_replaces_the_first() {
        let dir = std::env::temp_dir().join(format!("files-test-{}", uuid::Uuid::new_v4()));
        let files = Files::Folder(FolderFiles::new(&dir));
        let upload = files.start("a/b.csv.gz").await.unwrap();
        // Out of order, part 1 written twice, and a part 3 past the count
        // (left out).
        let writes: [(u32, &'static [u8]); 4] =
            [(2, b"world"), (1, b"hullo "), (1, b"hello "), (3, b"!!")];
        for (number, bytes) in writes {
            files
                .put_part("a/b.csv.gz", &upload, number, Bytes::from_static(bytes))
                .await
                .unwrap();
        }
        let tags = vec!["1".to_owned(), "2".to_owned()];
        files.complete("a/b.csv.gz", &upload, &tags).await.unwrap();
        let path = files.local_path("a/b.csv.gz").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        assert_eq!(
            files.download("a/b.csv.gz").await.unwrap(),
            Download::Served
        );

        assert_eq!(files.get("t").await.unwrap(), None);
        files.put("t", Bytes::from_static(b"tail")).await.unwrap();
        assert_eq!(files.get("t").await.unwrap().unwrap(), "tail");
        files.delete("t").await.unwrap();
        files.delete("t").await.unwrap();
        assert_eq!(files.get("t").await.unwrap(), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
