// ucp on Azure: Flex Consumption (Python 3.11, Linux), Storage, Cosmos DB (serverless), Application Insights,
// one user-assigned managed identity with least-privilege data-plane roles. No keys in app settings.
// Deployed with `azd up` (azure.yaml). The Event Grid subscription for the landing container needs the blob
// extension's system key, which exists only once the code runs: eventgrid.bicep is deployed after the code
// (azd postdeploy hook).
targetScope = 'resourceGroup'

@description('Short environment name (azd sets it); used to derive resource names.')
param environmentName string
param location string = resourceGroup().location
@description('Days a data file (landed, quarantined, failed, claim-check, export) is kept (erase cannot rewrite it).')
param fileRetentionDays int = 30

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = { 'azd-env-name': environmentName }
var functionAppName = 'func-ucp-${token}'
var databaseName = 'ucp'
var deploymentContainer = 'app-package'
// Blob containers and queues of shared/storage.py (names = settings defaults).
var blobContainers = [ 'landing', 'quarantine', 'failed', 'models', 'exports', 'claims', 'config', deploymentContainer ]
var queues = [ 'resolve', 'resolve-poison', 'activity', 'activity-poison' ]
// Cosmos containers and partition keys of shared/store/schema.py (a test keeps the two equal).
var cosmosContainers = [
  { name: 'profiles', pk: '/id' }
  { name: 'identifiers', pk: '/id' }
  { name: 'records', pk: '/id' }
  { name: 'blocking', pk: '/id' }
  { name: 'merges', pk: '/profile_id' }
  { name: 'review', pk: '/id' }
  { name: 'activity', pk: '/owner' }
  { name: 'activity_owners', pk: '/id' }
  { name: 'ledger', pk: '/id' }
  { name: 'segments', pk: '/id' }
  { name: 'state', pk: '/id' }
]

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-ucp-${token}'
  location: location
  tags: tags
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'stucp${token}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // identity only
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for name in blobContainers: {
  parent: blobService
  name: name
}]

// Files hold whole rows of many people: erasing one person (shared/privacy.py) cannot rewrite them, so they expire.
resource fileRetention 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'expire-data-files'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [ 'blockBlob' ]
              prefixMatch: [ 'landing/', 'quarantine/', 'failed/', 'claims/', 'exports/' ]
            }
            actions: { baseBlob: { delete: { daysAfterModificationGreaterThan: fileRetentionDays } } }
          }
        }
      ]
    }
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource storageQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for name in queues: {
  parent: queueService
  name: name
}]

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-ucp-${token}'
  location: location
  tags: tags
  properties: { sku: { name: 'PerGB2018' }, retentionInDays: 30 }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-ucp-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: { Application_Type: 'web', WorkspaceResourceId: logs.id, DisableLocalAuth: true }
}

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' = {
  name: 'cosmos-ucp-${token}'
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    disableLocalAuth: true // Entra ID only: no account keys
    consistencyPolicy: { defaultConsistencyLevel: 'Session' }
    locations: [ { locationName: location, failoverPriority: 0 } ]
    capabilities: [ { name: 'EnableServerless' } ]
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-11-15' = {
  parent: cosmos
  name: databaseName
  properties: { resource: { id: databaseName } }
}

resource cosmosContainerResources 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = [for c in cosmosContainers: {
  parent: database
  name: c.name
  properties: {
    resource: {
      id: c.name
      // Hash v2, as `ucp bootstrap` and the SDK create them (v1 hashes only a key's first 101 bytes). The version is
      // fixed at creation: a container deployed as v1 must be created anew and its data copied into it.
      partitionKey: { paths: [ c.pk ], kind: 'Hash', version: 2 }
      indexingPolicy: { indexingMode: 'consistent', automatic: true, includedPaths: [ { path: '/*' } ], excludedPaths: [ { path: '/"_etag"/?' } ] }
    }
  }
}]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-ucp-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${identity.id}': {} } }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identity.id }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: 40, instanceMemoryMB: 2048 }
      runtime: { name: 'python', version: '3.11' }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      appSettings: [
        // Identity-based host storage (no connection string, no key).
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
        { name: 'AZURE_CLIENT_ID', value: identity.properties.clientId } // DefaultAzureCredential picks this identity
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsights.properties.ConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identity.properties.clientId};Authorization=AAD' }
        { name: 'COSMOS_ENDPOINT', value: cosmos.properties.documentEndpoint } // no COSMOS_KEY: Entra ID
        { name: 'COSMOS_DATABASE', value: databaseName }
        // Binding expressions (%NAME%) in the blueprints.
        { name: 'UCP_LANDING_CONTAINER', value: 'landing' }
        { name: 'UCP_RESOLVE_QUEUE', value: 'resolve' }
        { name: 'UCP_ACTIVITY_QUEUE', value: 'activity' }
        { name: 'UCP_CHURN_SCHEDULE', value: '0 0 2 * * *' }
        { name: 'UCP_ENRICHMENT_SCHEDULE', value: '0 30 3 * * *' }
        { name: 'UCP_INSIGHTS_SCHEDULE', value: '0 0 4 * * *' }
      ]
    }
  }
}

// --- Least-privilege data-plane roles for the app's identity.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // host leases, deployment package, blob trigger receipts
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // resolve queue, poison queues
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // host timer/scale state on Flex
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb' // Entra-authenticated App Insights
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in [ roles.storageBlobDataOwner, roles.storageQueueDataContributor, roles.storageTableDataContributor ]: {
  name: guid(storage.id, identity.id, roleId)
  scope: storage
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
  }
}]

resource insightsRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

// Cosmos DB Built-in Data Contributor, scoped to the ucp database only.
resource cosmosDataRole 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = {
  parent: cosmos
  name: guid(cosmos.id, identity.id, 'data-contributor')
  properties: {
    principalId: identity.properties.principalId
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/00000000-0000-0000-0000-000000000002'
    scope: '${cosmos.id}/dbs/${databaseName}'
  }
}

output AZURE_FUNCTION_APP_NAME string = functionApp.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.name
output AZURE_STORAGE_ACCOUNT_ID string = storage.id
output COSMOS_ENDPOINT string = cosmos.properties.documentEndpoint
