// Event Grid delivery of BlobCreated events in the landing container to the ingest_blob function (the blob
// trigger with source EVENT_GRID, the only blob source Flex Consumption supports). Deployed after the code, by
// the azd postdeploy hook, because the webhook needs the blob extension's system key, which exists only once the
// app has started. Delivery is at least once and unordered: ingestion dedupes on blob name + ETag.
param storageAccountName string
param functionAppName string
param location string = resourceGroup().location

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

var blobExtensionKey = listKeys('${functionApp.id}/host/default', '2024-04-01').systemKeys.blobs_extension

resource topic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' = {
  name: 'evgt-${storageAccountName}'
  location: location
  properties: { source: storage.id, topicType: 'Microsoft.Storage.StorageAccounts' }
}

resource landing 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2024-06-01-preview' = {
  parent: topic
  name: 'landing-to-ingest'
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${functionApp.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.ingest_blob&code=${blobExtensionKey}'
      }
    }
    filter: {
      includedEventTypes: [ 'Microsoft.Storage.BlobCreated' ]
      subjectBeginsWith: '/blobServices/default/containers/landing/'
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 }
  }
}
