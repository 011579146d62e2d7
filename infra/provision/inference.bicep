// GPU inference for fine-tuned LoRA adapters on Azure Container Apps (aitk-nb).
// The same template as inference.json, which aitk-nb deploys (tests/toolkit/test_template.py keeps
// the two in agreement). To deploy by hand:
//   az deployment group create -g <resource-group> -f infra/provision/inference.bicep \
//     -p maximumInstanceCount=1 [name=value ...]
// A null in inference.parameters.json means "this template's default": pass only the values set.
// apiKey: aitk-nb generates one and passes it; a hand deployment that omits it gets a new GUID
// (read it back with `az containerapp secret show -n <app> -g <rg> --secret-name aitk-api-key`).
// Ownership: everything this template declares carries the tag aitk-nb-owner = the app's name (a
// share, which has no tags, the metadata aitk_nb_owner). A resource that existed before provision is
// referenced through its reuse* parameter (aitk-nb sets them), never redeclared: no PUT touches its
// properties or tags, and aitk-nb's teardown deletes only what carries the tag.

@description('Shell commands joined with \'; \' that start the web API.')
param defaultCommands array = [
  'cd /mount/aitk-nb/$CONTAINER_APP_NAME'
  'bash inference_app/start.sh'
]

@description('Maximum number of replicas (one GPU each); also the GPU workload profile\'s maximum node count where its type has one (dedicated profiles).')
@minValue(1)
@maxValue(10)
param maximumInstanceCount int = 1

@description('Region of every resource; default: the resource group\'s.')
param location string = resourceGroup().location

@description('Storage account holding the file share: 3-24 lowercase letters and digits. The name of an existing account reuses it.')
@minLength(3)
@maxLength(24)
param storageAccountName string = 'aitk${uniqueString(resourceGroup().id)}'

@description('Azure Files share mounted at /mount: each app\'s code and settings in /mount/aitk-nb/<app> (the container finds it by CONTAINER_APP_NAME, which Container Apps sets), adapters under /mount/models, base model under /mount/model-cache.')
@minLength(3)
@maxLength(63)
param fileShareName string = 'aitk-inference'

@description('Container Apps environment with a Consumption and a GPU workload profile.')
param acaEnvironmentName string = 'aitk-env-${uniqueString(resourceGroup().id)}'

@description('Name under which the environment knows the file share.')
param acaEnvironmentStorageName string = 'aitk-share'

@description('Container app serving the model: 2-32 lowercase letters, digits and \'-\'.')
@maxLength(32)
param acaAppName string = 'aitk-app-${take(uniqueString(resourceGroup().id), 8)}'

@description('Log Analytics workspace receiving the environment\'s logs.')
param acaLogAnalyticsName string = 'aitk-logs-${uniqueString(resourceGroup().id)}'

@description('Type of the GPU workload profile a new environment gets: serverless (Consumption-GPU-NC8as-T4, Consumption-GPU-NC24-A100) or dedicated (NC24-A100, NC48-A100, NC96-A100).')
param gpuWorkloadProfileType string = 'Consumption-GPU-NC8as-T4'

@description('Workload profile the app runs on: the GPU profile a new environment gets, or one that a reused environment already has (a reused environment is not redeclared, so its profiles stay as they are).')
param gpuWorkloadProfileName string = 'gpu'

@description('true: the storage account exists and is referenced, not declared (no PUT touches its properties or tags). aitk-nb sets the reuse* parameters for resources that existed before provision; false creates or updates the resource.')
param reuseStorageAccount bool = false

@description('true: the file share exists and is referenced, not declared.')
param reuseFileShare bool = false

@description('true: the Log Analytics workspace exists and is referenced, not declared.')
param reuseLogAnalytics bool = false

@description('true: the Container Apps environment exists and is referenced, not declared (its workload profiles stay as they are; no workspace is made for it).')
param reuseEnvironment bool = false

@description('true: the environment storage exists (linking the file share) and is referenced, not declared.')
param reuseEnvironmentStorage bool = false

@description('Base image. inference_app/start.sh builds the server\'s venv on the share once per requirements.txt hash, so restarts do not reinstall.')
param containerImage string = 'docker.io/library/python:3.11-slim-bookworm'

@description('Bearer key the endpoint requires on every route but /health; kept as the Container Apps secret aitk-api-key and given to the app as AITK_API_KEY. aitk-nb generates it and passes it (re-provisioning keeps the app\'s current key); a hand deployment that omits it gets a new random GUID.')
@secure()
param apiKey string = newGuid() // checkov:skip=CKV_AZURE_131:newGuid() is evaluated per deployment: a random key, not a hard-coded secret (ARM-TTK allows expression defaults).

var mountPath = '/mount'
var port = 7860
var healthPath = '/health'
var livePath = '/live'
var apiKeySecretName = 'aitk-api-key'
var ownerTags = {
  'aitk-nb-owner': acaAppName
}
// Serverless GPU profiles (Consumption-GPU-*) take no node counts; dedicated ones need them.
var gpuProfileIsServerless = take(gpuWorkloadProfileType, 11) == 'Consumption'
var gpuProfile = gpuProfileIsServerless ? {
  name: gpuWorkloadProfileName
  workloadProfileType: gpuWorkloadProfileType
} : {
  name: gpuWorkloadProfileName
  workloadProfileType: gpuWorkloadProfileType
  minimumCount: 0
  maximumCount: maximumInstanceCount
}

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' = if (!reuseStorageAccount) {
  // checkov:skip=CKV_AZURE_35:The share must stay reachable without a virtual network: the Container Apps environment mounts it over SMB from addresses that are not fixed and is not a trusted Microsoft service, and deploy uploads to it from the user's machine. Access needs the account key (secure transfer and TLS 1.2 enforced).
  // checkov:skip=CKV_AZURE_206:LRS on purpose: the share holds copies (code and adapters synced from the user's project by deploy, a public base model, a venv rebuilt from requirements.txt), all restorable by re-running deploy.
  // checkov:skip=CKV_AZURE_44:minimumTlsVersion is TLS1_2 (below). checkov's Bicep reader does not look into the body of a conditional resource (= if (...)); its ARM JSON scan of the same resource passes this check.
  // checkov:skip=CKV_AZURE_43:The name is evaluated at deployment: the default is 'aitk' plus uniqueString() (lowercase letters and digits, 17 characters) and the parameter's minLength/maxLength bound any given name.
  name: storageAccountName
  location: location
  tags: ownerTags
  sku: {
    name: 'Standard_LRS'
  }
  kind: 'StorageV2'
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource fileService 'Microsoft.Storage/storageAccounts/fileServices@2023-05-01' existing = {
  parent: storageAccount
  name: 'default'
}

resource fileShare 'Microsoft.Storage/storageAccounts/fileServices/shares@2023-05-01' = if (!reuseFileShare) {
  parent: fileService
  name: fileShareName
  properties: {
    shareQuota: 1024
    // shares have no tags: the owner is kept in the share's metadata (names are C# identifiers)
    metadata: {
      aitk_nb_owner: acaAppName
    }
  }
}

// a reused environment keeps its own workspace: none is made for it
resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = if (!(reuseLogAnalytics || reuseEnvironment)) {
  name: acaLogAnalyticsName
  location: location
  tags: ownerTags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource acaEnvironment 'Microsoft.App/managedEnvironments@2024-03-01' = if (!reuseEnvironment) {
  name: acaEnvironmentName
  location: location
  tags: ownerTags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: reference(resourceId('Microsoft.OperationalInsights/workspaces', acaLogAnalyticsName), '2023-09-01').customerId
        sharedKey: listKeys(resourceId('Microsoft.OperationalInsights/workspaces', acaLogAnalyticsName), '2023-09-01').primarySharedKey
      }
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
      gpuProfile
    ]
  }
}

resource environmentStorage 'Microsoft.App/managedEnvironments/storages@2024-03-01' = if (!reuseEnvironmentStorage) {
  parent: acaEnvironment
  name: acaEnvironmentStorageName
  dependsOn: [
    fileShare
  ]
  properties: {
    azureFile: {
      accountName: storageAccountName
      accountKey: listKeys(resourceId('Microsoft.Storage/storageAccounts', storageAccountName), '2023-05-01').keys[0].value
      shareName: fileShareName
      accessMode: 'ReadWrite'
    }
  }
}

resource containerApp 'Microsoft.App/containerApps@2024-03-01' = {
  name: acaAppName
  location: location
  // the environment storage it made inside a reused environment is recorded here, where a teammate's
  // clone finds it (an environment storage has no tags)
  tags: union(ownerTags, reuseEnvironmentStorage ? {} : {
    'aitk-nb-environment-storage': acaEnvironmentStorageName
  })
  dependsOn: [
    acaEnvironment
    environmentStorage
  ]
  properties: {
    managedEnvironmentId: acaEnvironment.id
    workloadProfileName: gpuWorkloadProfileName
    configuration: {
      activeRevisionsMode: 'Single'
      secrets: [
        {
          name: apiKeySecretName
          value: apiKey
        }
      ]
      ingress: {
        external: true
        targetPort: port
        transport: 'auto'
        allowInsecure: false
        // Gradio's queue (join, then stream) must reach the replica that holds the session.
        stickySessions: {
          affinity: 'sticky'
        }
      }
    }
    template: {
      containers: [
        {
          name: 'inference'
          image: containerImage
          command: [
            '/bin/bash'
            '-c'
          ]
          args: [
            join(defaultCommands, '; ')
          ]
          env: [
            {
              name: 'AITK_MOUNT_ROOT'
              value: mountPath
            }
            {
              name: 'PORT'
              value: string(port)
            }
            {
              name: 'AITK_API_KEY'
              secretRef: apiKeySecretName
            }
          ]
          resources: {
            cpu: 8
            memory: '56Gi'
          }
          volumeMounts: [
            {
              volumeName: 'share'
              mountPath: mountPath
            }
          ]
          probes: [
            {
              type: 'Startup'
              httpGet: {
                path: livePath
                port: port
              }
              initialDelaySeconds: 10
              periodSeconds: 60
              timeoutSeconds: 5
              failureThreshold: 10
            }
            {
              type: 'Readiness'
              httpGet: {
                path: healthPath
                port: port
              }
              periodSeconds: 10
              timeoutSeconds: 5
              failureThreshold: 3
            }
            {
              type: 'Liveness'
              httpGet: {
                path: livePath
                port: port
              }
              periodSeconds: 30
              timeoutSeconds: 5
              failureThreshold: 3
            }
          ]
        }
      ]
      scale: {
        minReplicas: 0
        maxReplicas: maximumInstanceCount
        rules: [
          {
            // Half the server's max_concurrency (16, beyond which it answers 503): scale out first.
            name: 'http-concurrency'
            http: {
              metadata: {
                concurrentRequests: '8'
              }
            }
          }
        ]
      }
      volumes: [
        {
          name: 'share'
          storageType: 'AzureFile'
          storageName: acaEnvironmentStorageName
        }
      ]
    }
  }
}

output SUBSCRIPTION_ID string = subscription().subscriptionId
output RESOURCE_GROUP_NAME string = resourceGroup().name
output STORAGE_ACCOUNT_NAME string = storageAccountName
output FILE_SHARE_NAME string = fileShareName
output ACA_APP_NAME string = containerApp.name
output ACA_APP_ENDPOINT string = 'https://${containerApp.properties.configuration.ingress.fqdn}'
