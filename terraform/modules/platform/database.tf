# The Driftline store's access: one PostgreSQL login role per component, each component's URL in a
# Secret of its own, and MLflow's role and database. Roles are created by a Kubernetes Job inside
# the cluster, the one place that can reach the private database (see README.md for why not the
# postgresql provider).

locals {
  roles_sql = templatefile("${path.module}/files/database-roles.sql.tftpl", {
    components = sort(var.database_components)
    database   = nonsensitive(var.database.name)
  })
  database_secret = { for c in var.database_components : c => "driftline-database-${c}" }
  # Values for the Driftline chart: MLflow's URL, and the store URL Secret. The chart reads one
  # Secret for every component today; the controller's (it runs migrations) until it takes one each.
  driftline_values = yamlencode({
    mlflow   = { trackingUri = local.mlflow_url }
    database = { existingSecret = local.database_secret["controller"], urlKey = "url" }
  })
}

resource "kubernetes_namespace_v1" "driftline" {
  metadata {
    name   = local.driftline_namespace
    labels = { "app.kubernetes.io/part-of" = "driftline" }
  }
}

resource "random_password" "component" {
  for_each = var.database_components
  length   = 40
  special  = false # the password sits in a URL: letters and digits need no escaping
}

resource "random_password" "mlflow" {
  length  = 40
  special = false
}

resource "kubernetes_secret_v1" "component_database" {
  for_each = var.database_components

  metadata {
    name      = local.database_secret[each.key]
    namespace = kubernetes_namespace_v1.driftline.metadata[0].name
    labels    = { "app.kubernetes.io/part-of" = "driftline", "app.kubernetes.io/component" = each.key }
  }

  data = {
    url = format(
      "postgresql+psycopg://driftline_%s:%s@%s:%d/%s?sslmode=require",
      each.key,
      random_password.component[each.key].result,
      var.database.host,
      var.database.port,
      var.database.name,
    )
  }
}

resource "kubernetes_secret_v1" "mlflow_database" {
  metadata {
    name      = "mlflow-database"
    namespace = kubernetes_namespace_v1.mlflow.metadata[0].name
  }

  data = {
    username = "mlflow"
    password = random_password.mlflow.result
  }
}

# The Job and the master credentials live in a namespace of their own: no Driftline pod can read
# them, and the chart's default-deny NetworkPolicies do not apply to it.
resource "kubernetes_namespace_v1" "database_admin" {
  metadata {
    name   = "driftline-database-admin"
    labels = { "app.kubernetes.io/part-of" = "driftline", "pod-security.kubernetes.io/enforce" = "restricted" }
  }
}

resource "kubernetes_secret_v1" "database_roles" {
  metadata {
    name      = "driftline-database-roles"
    namespace = kubernetes_namespace_v1.database_admin.metadata[0].name
  }

  data = merge(
    {
      PGHOST          = var.database.host
      PGPORT          = tostring(var.database.port)
      PGDATABASE      = var.database.name
      PGUSER          = var.database.admin_username
      PGPASSWORD      = var.database.admin_password
      PGSSLMODE       = "require"
      PASSWORD_MLFLOW = random_password.mlflow.result
    },
    { for c in var.database_components : "PASSWORD_${upper(c)}" => random_password.component[c].result },
  )
}

resource "kubernetes_config_map_v1" "database_roles" {
  metadata {
    name      = "driftline-database-roles"
    namespace = kubernetes_namespace_v1.database_admin.metadata[0].name
  }

  data = { "roles.sql" = local.roles_sql }
}

resource "kubernetes_job_v1" "database_roles" {
  # checkov:skip=CKV_K8S_43:the psql image is pinned by tag (var.psql_image accepts a digest)
  metadata {
    # A Job's pod template is immutable: a new name per script runs it again when the script changes.
    name      = "driftline-database-roles-${substr(sha256(local.roles_sql), 0, 8)}"
    namespace = kubernetes_namespace_v1.database_admin.metadata[0].name
  }

  spec {
    backoff_limit = 4

    template {
      metadata {
        labels = { "app.kubernetes.io/name" = "driftline-database-roles" }
      }

      spec {
        restart_policy                  = "Never"
        automount_service_account_token = false

        security_context {
          run_as_non_root = true
          run_as_user     = 70 # postgres in the alpine image
          run_as_group    = 70
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        container {
          name              = "psql"
          image             = var.psql_image
          image_pull_policy = "IfNotPresent"
          command           = ["psql", "--no-psqlrc", "--file=/sql/roles.sql"]

          env_from {
            secret_ref {
              name = kubernetes_secret_v1.database_roles.metadata[0].name
            }
          }

          volume_mount {
            name       = "sql"
            mount_path = "/sql"
            read_only  = true
          }

          resources {
            requests = { cpu = "50m", memory = "64Mi" }
            limits   = { cpu = "500m", memory = "128Mi" }
          }

          security_context {
            allow_privilege_escalation = false
            privileged                 = false
            read_only_root_filesystem  = true
            capabilities {
              drop = ["ALL"]
            }
          }
        }

        volume {
          name = "sql"
          config_map {
            name = kubernetes_config_map_v1.database_roles.metadata[0].name
          }
        }
      }
    }
  }

  wait_for_completion = true

  timeouts {
    create = "10m"
    update = "10m"
  }
}
