output "database" {
  description = "Where the managed PostgreSQL listens: host, port and the Driftline database's name."
  value = {
    host = aws_db_instance.this.address
    port = aws_db_instance.this.port
    name = aws_db_instance.this.db_name
  }
}

output "master_user_secret_arn" {
  description = "Secrets Manager secret RDS keeps the master credentials in (read once to create the component roles)."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "artifact_bucket" {
  description = "S3 bucket MLflow stores model artifacts in."
  value       = aws_s3_bucket.artifacts.bucket
}

output "mlflow_role_arn" {
  description = "IAM role the MLflow server's ServiceAccount assumes to read and write the artifact bucket."
  value       = module.mlflow_irsa.iam_role_arn
}
