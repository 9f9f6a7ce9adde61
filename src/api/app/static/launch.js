// The launch page: the service has checked the launching EHR and read its endpoints; this
// goes on to the EHR's authorization server.
import { authorize } from './smart.js';

const status = document.getElementById('status');
try {
  const config = JSON.parse(document.getElementById('launch-config').textContent);
  await authorize(config);
} catch (error) {
  status.textContent = `The sign-in could not start: ${error.message}`;
}
