export { deployWorkflow } from './deploy';
export { smokeWorkflow } from './smoke';
