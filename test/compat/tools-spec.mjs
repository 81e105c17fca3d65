// The one tool every client offers in the tool-call scenarios, and what the fake answers.
export const WEATHER_PARAMETERS = {
  type: 'object',
  properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
  required: ['city', 'unit'],
  additionalProperties: false,
};
export const WEATHER_TOOL = { type: 'function', function: { name: 'get_weather', description: 'The weather in a city.', parameters: WEATHER_PARAMETERS } };
/** The arguments the fake builds from WEATHER_PARAMETERS (scripts/fake-upstream/tools.mjs). */
export const WEATHER_ARGS = { city: 'fake', unit: 'celsius' };
