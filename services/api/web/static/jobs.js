// The project's jobs with their latest run.
import { api, jobRows, start } from "./common.js";

async function page() {
  const { items } = await api("GET", "/v1/jobs?limit=100");
  jobRows(document.querySelector("#jobs tbody"), items);
}

start(page);
